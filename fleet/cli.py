"""The `fleet` command: verbs over runs of MLPerf Inference across a lab.

Each verb lives in `fleet/commands/<verb>.py` and exposes `register(subparsers)` (adds its
parser and sets `func`) . A FleetError becomes one line on stderr and exit code 1; nothing a
user can fix ever shows a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fleet import __version__
from fleet.errors import FleetError

# verb -> module; order is the order of `fleet --help`.
VERBS: dict[str, str] = {
    "run": "fleet.commands.run",
    "tune": "fleet.commands.tune",
    "nodes": "fleet.commands.nodes",
    "submit": "fleet.commands.submit",
    "check": "fleet.commands.check",
    "report": "fleet.commands.report",
    "sweep": "fleet.commands.sweep",
    "schedule": "fleet.commands.schedule",
    "history": "fleet.commands.history",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="Prepare, run and merge MLPerf Inference v3.1 benchmarks across a lab of machines.",
    )
    parser.add_argument("--version", action="version", version=f"mlperf-fleet {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for module_name in VERBS.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FleetError as exc:
        print(f"fleet: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fleet: interrupted; finished results are kept, rerun with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
