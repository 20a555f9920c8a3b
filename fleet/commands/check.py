"""`fleet check PATH`: the built-in v3.1 checker (and optionally the official one) on a tree."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleet.submission import paths
from fleet.submission.assemble import read_record, tree_of_run
from fleet.submission.checker import check_tree
from fleet.submission.findings import PROFILES
from fleet.submission.official import run_official


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check a submission tree against the v3.1 rules",
        description="Check a run's submission tree (or any tree) against every rule of the v3.1 "
        "submission checker plus fleet's stricter ones. Exit 1 on any problem. For a run, the "
        "verdict is also written to runs/<run>/check.txt.",
    )
    parser.add_argument("path", metavar="PATH", help="run id, run directory or submission tree root")
    parser.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="submission",
        help="submission (default): full rules; smoke: relax duration and count rules for smoke runs",
    )
    parser.add_argument(
        "--official",
        metavar="INFERENCE_SRC",
        type=Path,
        help="also run tools/submission/submission_checker.py from this v3.1 checkout",
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), metavar="DIR", help="default: ./runs")
    parser.set_defaults(func=run)


def _locate(ref: str, runs_dir: Path) -> tuple[Path, Path | None]:
    """(tree root, run dir or None)."""
    if paths.is_tree(Path(ref)):
        return Path(ref), None
    run_dir = paths.resolve_run_dir(ref, runs_dir)
    return tree_of_run(run_dir), run_dir


def run(args: argparse.Namespace) -> int:
    tree, run_dir = _locate(args.path, args.runs_dir)
    record = read_record(run_dir / paths.ASSEMBLY_RECORD) if run_dir else None
    report = check_tree(tree, profile=args.profile, record=record)
    text = report.render()
    ok = report.ok
    if args.official is not None:
        submitters = sorted(
            {p.name for d in paths.DIVISIONS if (tree / d).is_dir() for p in (tree / d).iterdir()}
        )
        verdict = run_official(args.official, tree, submitters[0] if len(submitters) == 1 else None)
        text += "\n" + verdict.render(expected=len(report.expected))
        ok = ok and verdict.ok(expected=len(report.expected))
    print(text, end="")
    if run_dir is not None:
        (run_dir / paths.CHECK_FILE).write_text(text, encoding="utf-8")
    return 0 if ok else 1
