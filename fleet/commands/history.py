"""`fleet history`: the trend table over every stored run, the HTML page, and the alert.

Exit status 3 means the judged run (the newest one in view by default) holds a confirmed
regression (a second night past the bar, fleet/regress.py) or a broken, INVALID, inaccurate or
non-compliant job, so cron or CI can alert on it; a suspect first night does not. 1 is an
error, 0 all well.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fleet.errors import ConfigError
from fleet.history.api import ingest_run, view
from fleet.history.store import default_db_path
from fleet.history.table import render_table
from fleet.regress import EXIT_REGRESSION, MIN_MIN_RUNS, parse_threshold
from fleet.report.trend import write_trend

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `2w`, `90m`, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(timezone.utc)
    m = re.fullmatch(r"(\d+)\s*([mhdw])", text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: give an age (30d, 12h, 2w) or a date (2026-11-01)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _threshold(text: str) -> float:
    try:
        return parse_threshold(text)
    except ValueError as exc:
        raise ConfigError(f"--threshold {exc}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "history",
        help="trends and regressions across every stored run",
        description="Show how every (system, task, scenario) moved across runs and judge the newest "
        "run against each series' own noise. Exit status 3 when a regression is confirmed or a job "
        "broke.",
    )
    p.add_argument("--runs-dir", default="runs", help="runs folder holding history.sqlite (default: runs)")
    p.add_argument("--db", help="history database (default: RUNS_DIR/history.sqlite)")
    p.add_argument("--ingest", action="append", default=[], metavar="RUN",
                   help="store a run first (run id under RUNS_DIR, or a folder); repeatable")  # fmt: skip
    p.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    p.add_argument("--system", action="append", default=[], help="only this system (repeatable)")
    p.add_argument("--scenario", action="append", default=[], help="only this scenario (repeatable)")
    p.add_argument("--since", help="only runs newer than this: 30d, 12h, 2w or a date")
    p.add_argument("--run", help="judge this run instead of the newest in view")
    p.add_argument("--threshold",
                   help="flag moves beyond this, e.g. 5%% (default: the matrix's, else 5%%)")  # fmt: skip
    p.add_argument(
        "--baseline",
        type=int,
        metavar="N",
        help="baseline: median of at most the last N clean nights (default: the matrix's, else 10)",
    )
    p.add_argument(
        "--min-runs",
        type=int,
        metavar="N",
        help="clean nights a series needs before it is judged (default: the matrix's, else 5)",
    )
    p.add_argument("--html", nargs="?", const="", metavar="PATH",
                   help="also write the trend page (default path: RUNS_DIR/history.html)")  # fmt: skip
    p.set_defaults(func=run)


def _run_dir(runs_dir: Path, name: str) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    if (runs_dir / name).is_dir():
        return runs_dir / name
    raise ConfigError(f"--ingest {name}: no run folder {name} or {runs_dir / name}")


def run(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    threshold = _threshold(args.threshold) if args.threshold else None
    if args.baseline is not None and args.baseline < MIN_MIN_RUNS:
        raise ConfigError(f"--baseline must be at least {MIN_MIN_RUNS} (a spread needs three nights)")
    if args.min_runs is not None and args.min_runs < MIN_MIN_RUNS:
        raise ConfigError(f"--min-runs must be at least {MIN_MIN_RUNS} (a spread needs three nights)")
    runs_dir = Path(args.runs_dir).expanduser()
    db = Path(args.db).expanduser() if args.db else default_db_path(runs_dir)
    for name in args.ingest:
        count = ingest_run(db, _run_dir(runs_dir, name))
        print(f"stored {count} results of {name}")
    if not db.exists():
        raise ConfigError(f"no history at {db}: run `fleet sweep`, or `fleet history --ingest RUN`")
    shown = view(
        db, tasks=args.task, systems=args.system, scenarios=args.scenario, since=since,
        run_id=args.run, threshold=threshold, baseline_runs=args.baseline, min_runs=args.min_runs,
    )  # fmt: skip
    if args.run and args.run not in {r.run_id for r in shown.rows}:
        raise ConfigError(f"--run {args.run}: no results of that run in view")
    print(render_table(shown.report))
    if args.html is not None:
        target = Path(args.html) if args.html else runs_dir / "history.html"
        page = write_trend(target, shown.rows, shown.report)
        print(f"trend page: {page}")
    return EXIT_REGRESSION if shown.report.regressions else 0
