"""`fleet report RUN_ID`: summary.csv, summary.md and index.html (with plots) for a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleet.errors import ConfigError
from fleet.report.publish import FORMATS, write_reports
from fleet.submission import paths


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="tables and plots of a run's results (csv, markdown, html)",
        description="Write runs/<run>/report/{summary.csv, summary.md, index.html}: every result "
        "of every host, with plots, smoke and synthetic runs marked.",
    )
    parser.add_argument("run", metavar="RUN_ID", help="run id under --runs-dir, or a run directory")
    parser.add_argument(
        "--format", default=",".join(FORMATS), help="comma-separated: html,md,csv (default all)"
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), metavar="DIR", help="default: ./runs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ConfigError(
            f"unknown report format(s) {', '.join(unknown) or '(none)'}: use {','.join(FORMATS)}"
        )
    run_dir = paths.resolve_run_dir(args.run, args.runs_dir)
    for path in write_reports(run_dir, formats):
        print(path)
    return 0
