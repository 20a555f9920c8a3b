"""`python -m fleet.harness` (see cli.py)."""

import sys

from fleet.harness.cli import main

sys.exit(main())
