"""What the harness is running now, in a small file the controller polls for its progress view.

The bench role starts the harness with FLEET_STATUS_FILE set and, while the job runs, reads
that file every few seconds (roles/bench/tasks/job.yml), so a lab administrator sees the
node's name and `resnet50 Server TEST05 4m10s` instead of a silent ten-minute `bench`.
Without the variable (a harness run by hand) nothing is written. A status that cannot be
written is dropped: the display must never stop a run. (This file is published in the
submission's code/ tree: no inventory host name belongs in it; the privacy scan refuses one.)
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from fleet.harness.jsonfile import write_json

STATUS_ENV = "FLEET_STATUS_FILE"


def announce(task: str, scenario: str, mode: str) -> None:
    """Record that `mode` of `task`/`scenario` starts now (node clock, seconds since the epoch)."""
    path = os.environ.get(STATUS_ENV)
    if not path:
        return
    data = {"task": task, "scenario": scenario, "mode": mode, "started": round(time.time(), 3)}
    with contextlib.suppress(OSError):
        write_json(Path(path), data)
