"""What every run does once its results are home: merge, check, report, remember.

`fleet run`, `fleet run --resume` and `fleet sweep` all end here, so a lab administrator gets
the same outputs from each: runs/<run>/submission/, check.txt, report/ and a history entry.
Each step reads only the run directory. A step that fails is reported as one warning line and
the others still run: a broken report must never cost the collected results or the tree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import FleetError
from fleet.runstate import RunState


@dataclass
class Finished:
    """Where the outputs of a finished run landed, and what went wrong producing them."""

    tree: Path | None = None
    check_verdict: str | None = None
    check_ok: bool | None = None
    reports: list[Path] = field(default_factory=list)
    history_rows: int | None = None
    warnings: list[str] = field(default_factory=list)


def _warn(line: str) -> None:
    print(f"fleet: warning: {line}", file=sys.stderr)


def after_collection(
    run_dir: Path,
    state: RunState,
    warn: Callable[[str], None] = _warn,
    ingest_history: bool = True,
    say_verdict: bool = True,
) -> Finished:
    """Assemble the submission, run the built-in checker, write reports and ingest history.

    `say_verdict=False` leaves the checker's line to the caller (`verdict_line`), which says it
    last, after its own table.
    """
    from fleet.history.api import ingest_run
    from fleet.history.store import default_db_path
    from fleet.report.publish import write_reports
    from fleet.submission.assemble import assemble_submission, default_division
    from fleet.submission.checker import check_run

    run_dir = Path(run_dir)
    settings = state.settings
    done = Finished()

    def step(name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except FleetError as exc:
            done.warnings.append(f"{name}: {exc}")
            warn(f"{name} skipped: {exc}")

    if not (run_dir / "raw").is_dir() or not any((run_dir / "raw").iterdir()):
        warn("no node returned results: nothing to assemble, check or report")
        return done

    def submission() -> None:
        done.tree = assemble_submission(
            run_dir, settings.get("submitter") or "MLPerfFleet", default_division(run_dir)
        )

    def check() -> None:
        report = check_run(run_dir, profile=settings.get("profile") or "submission")
        done.check_ok = report.ok
        done.check_verdict = report.verdict()

    def reports() -> None:
        done.reports = write_reports(run_dir)

    def history() -> None:
        runs_dir = Path(settings.get("runs_dir") or run_dir.parent)
        done.history_rows = ingest_run(default_db_path(runs_dir), run_dir)

    step("submission", submission)
    if done.tree is not None:
        step("check", check)
    step("report", reports)
    if ingest_history:
        step("history", history)
    if done.tree is not None:
        print(f"fleet: submission tree {done.tree}", file=sys.stderr)
    if done.reports:
        print(f"fleet: report {run_dir / 'report' / 'index.html'}", file=sys.stderr)
    if say_verdict and done.check_verdict:
        print(verdict_line(run_dir, done), file=sys.stderr)
    return done


def verdict_line(run_dir: Path, done: Finished) -> str:
    """The checker's verdict on the run's tree, with where its details are."""
    return f"fleet: check: {done.check_verdict} (details: {Path(run_dir) / 'check.txt'})"
