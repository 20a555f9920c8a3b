"""What `fleet history` and `fleet sweep` share: ingest a run directory, judge the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from fleet.history.ingest import failed_from_runstate, read_run
from fleet.history.store import HistoryStore, ResultRow
from fleet.regress import Policy, Report, judge


def ingest_run(db: Path, run_dir: Path) -> int:
    """Store one run directory (replacing what it stored before); returns its row count.

    Everything comes from the run directory itself, so ingesting again gives the same rows.
    Jobs run.json records as failed stay visible as failed (or missing) rows.
    """
    record, rows = read_run(run_dir, failed=failed_from_runstate(run_dir))
    with HistoryStore(db) as store:
        return store.replace_run(record, rows)


@dataclass(frozen=True)
class View:
    rows: list[ResultRow]
    report: Report


def view(
    db: Path,
    *,
    tasks: Sequence[str] = (),
    systems: Sequence[str] = (),
    scenarios: Sequence[str] = (),
    since: datetime | None = None,
    run_id: str | None = None,
    threshold: float | None = None,
    baseline_runs: int | None = None,
    min_runs: int | None = None,
) -> View:
    """Filtered rows and the verdicts on the judged run; unset policy values come from that
    run's matrix (as the sweep stored it), else the defaults."""
    with HistoryStore(db) as store:
        rows = store.results(tasks=tasks, systems=systems, scenarios=scenarios, since=since)
        runs = {r.run_id: r for r in store.runs()}
    judged = run_id or (rows[-1].run_id if rows else None)
    stored = runs.get(judged) if judged else None
    default = Policy()
    policy = Policy(
        threshold=threshold or (stored and stored.threshold) or default.threshold,
        baseline_runs=baseline_runs or (stored and stored.baseline_runs) or default.baseline_runs,
        min_runs=min_runs or (stored and stored.min_runs) or default.min_runs,
    )
    if policy.min_runs > policy.baseline_runs:
        policy = replace(policy, min_runs=policy.baseline_runs)
    return View(rows, judge(rows, policy, run_id=judged))

