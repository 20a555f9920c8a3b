"""`fleet submit RUN_ID`: merge every host's results into one official submission tree."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fleet.errors import ConfigError
from fleet.submission import paths
from fleet.submission.assemble import assemble_submission, default_division, read_record


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="merge a run's results into <division>/<org>/ (the official v3.1 layout)",
        description="Merge every host's results of a run into one submission tree "
        "(default runs/<run>/submission). Synthetic results go to the open division unless "
        "--division closed --allow-synthetic-in-closed is given.",
    )
    parser.add_argument("run", metavar="RUN_ID", help="run id under --runs-dir, or a run directory")
    parser.add_argument("--submitter", metavar="ORG", help="organization (directory name and systems json)")
    parser.add_argument(
        "--division", choices=("closed", "open"), help="default: closed, or open for synthetic runs"
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="tree root (default: runs/<run>/submission)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), metavar="DIR", help="default: ./runs")
    parser.add_argument(
        "--allow-synthetic-in-closed",
        action="store_true",
        help="put synthetic-asset results into closed anyway",
    )
    parser.set_defaults(func=run)


def _submitter(args: argparse.Namespace, run_dir: Path) -> str:
    if args.submitter:
        return args.submitter
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        data = {}
    found = (
        data.get("submitter") or (data.get("config") or {}).get("submitter")
        if isinstance(data, dict)
        else None
    )
    if not found:
        raise ConfigError("no submitter: give --submitter ORG (or set submitter in fleet.yaml)")
    return str(found)


def run(args: argparse.Namespace) -> int:
    run_dir = paths.resolve_run_dir(args.run, args.runs_dir)
    division = args.division
    if division is None:
        division = "closed" if args.allow_synthetic_in_closed else default_division(run_dir)
        if division == "open":
            print(
                "fleet submit: note: this run used synthetic assets, so its results go to the open division"
            )
    root = assemble_submission(
        run_dir, _submitter(args, run_dir), division, args.out, args.allow_synthetic_in_closed
    )
    record = read_record(run_dir / paths.ASSEMBLY_RECORD) or {}
    print(
        f"fleet submit: {root} ({division}): {len(record.get('systems', {}))} systems, "
        f"{len(record.get('results', []))} results; untruncated logs stay in {run_dir / 'raw'}"
    )
    for skipped in record.get("skipped", []):
        print(f"fleet submit: skipped {skipped['key']}: {skipped['reason']}")
    return 0
