"""`fleet sweep`: one run over a whole matrix, then history, verdicts and the morning page.

Each node gets its own queue of RunSpecs (every task the matrix gives it, one after another)
and all nodes run at once, so no node waits for another and none runs two benchmarks at the
same time. One job failing is one job's outcome: the orchestrator moves on, and the sweep
report lists every planned job with what became of it. A lock on `<runs>/.sweep.lock`
(flock) keeps two sweeps from overlapping, whoever started them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO

from fleet import orchestrate
from fleet.config import validate
from fleet.errors import FleetError, RunStateError
from fleet.finish import after_collection
from fleet.harness.spec import RunSpec
from fleet.history.api import ingest_run, view
from fleet.history.ingest import SWEEP_RECORD
from fleet.history.store import default_db_path
from fleet.history.table import render_table
from fleet.inventory import Inventory, load_inventory
from fleet.matrix import Matrix, expand, group_members, load_matrix
from fleet.plan import jobs_of
from fleet.progress import Progress
from fleet.regress import EXIT_REGRESSION
from fleet.report.trend import write_trend
from fleet.runstate import OK, RunState

LOCK_NAME = ".sweep.lock"
PAGE_WINDOW = timedelta(days=90)  # the morning page plots this much history


@dataclass(frozen=True)
class Prepared:
    """A matrix checked against its inventory, expanded into per-node queues."""

    path: Path
    matrix: Matrix
    inventory: Inventory
    specs: dict[str, list[RunSpec]]


def prepare(matrix_path: Path, run_id: str = "") -> Prepared:
    """Load, validate and expand a matrix; any problem is one ConfigError line."""
    path = Path(matrix_path).expanduser()
    matrix = load_matrix(path)
    inventory = load_inventory(matrix.inventory)
    specs = expand(matrix, inventory, group_members(matrix.inventory), run_id=run_id, where=str(path))
    return Prepared(path.resolve(), matrix, inventory, specs)


def new_run_id() -> str:
    """A sweep is a run with a recognisable name: `sweep-` + the id `fleet run` would pick."""
    return f"sweep-{orchestrate.new_run_id()}"


class SweepLock:
    """An exclusive, non-blocking flock held for the whole sweep; the kernel drops it on exit."""

    def __init__(self, runs_dir: Path) -> None:
        self.path = Path(runs_dir) / LOCK_NAME
        self._fh: IO[str] | None = None

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # held until __exit__
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunStateError(f"another sweep is running ({holder}); lock {self.path}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat(timespec='seconds')}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.close()  # closing the descriptor releases the flock
            self._fh = None


def job_lines(
    specs: Mapping[str, list[RunSpec]], state: RunState | None, repeats: int = 0
) -> list[dict[str, str]]:
    """Every planned job with what became of it (a job run.json never reached is `not run`)."""
    jobs = state.jobs if state else {}
    systems = {host: host_specs[0].system_name for host, host_specs in specs.items() if host_specs}
    lines = []
    for job in jobs_of(specs, repeats):
        done = jobs.get(job.id)
        result = ""
        if done is not None and done.result is not None:
            result = f"{done.result:.4g} {done.result_unit or ''}".strip()
        lines.append(
            {
                "host": job.host,
                "system": systems.get(job.host, job.host),
                "task": job.task,
                "scenario": job.scenario,
                "repeat": str(job.repeat) if job.repeat else "",
                "modes": ",".join(job.modes),
                "status": done.status if done else "not run",
                "result": result,
                "validity": (done.validity if done else None) or "",
                "error": ((done.error or "") if done else "") or "",
            }
        )
    return lines


def write_record(run_dir: Path, prepared: Prepared, lines: list[dict[str, str]]) -> Path:
    """sweep.json: the matrix, its regression policy and every job; the history reads it."""
    policy = prepared.matrix.regression
    record = {
        "matrix": str(prepared.path),
        "regression": {"threshold": policy.threshold, "baseline_runs": policy.baseline_runs,
                       "min_runs": policy.min_runs},
        "repeats": prepared.matrix.repeats,
        "jobs": lines,
    }
    path = Path(run_dir) / SWEEP_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def run_sweep(prepared: Prepared, runs_dir: Path, run_id: str) -> int:
    """Run the whole matrix as one run, store it, judge it, write the page.

    Returns EXIT_REGRESSION when a regression or a broken job is flagged. If the run itself
    stops on an error, what it got done is still stored and shown before the error is raised.
    """
    settings = validate(replace(prepared.matrix.run_settings(), runs_dir=str(runs_dir)))
    run_dir = Path(runs_dir) / run_id
    repeats = prepared.matrix.repeats
    jobs = len(jobs_of(prepared.specs, repeats))
    with SweepLock(runs_dir):
        print(f"sweep {run_id}: {jobs} jobs on {len(prepared.specs)} nodes", flush=True)
        stopped: FleetError | None = None
        try:
            with Progress(list(prepared.specs)) as progress:
                state: RunState | None = orchestrate.execute(
                    run_dir, prepared.inventory, prepared.specs, settings, progress=progress
                )
            after_collection(run_dir, state, ingest_history=False)  # ingested below, with sweep.json
        except FleetError as exc:
            stopped = exc
            state = RunState.load(run_dir / "run.json") if (run_dir / "run.json").exists() else None
        lines = job_lines(prepared.specs, state, repeats)
        write_record(run_dir, prepared, lines)
        db = default_db_path(runs_dir)
        ingest_run(db, run_dir)
        shown = view(db, run_id=run_id, since=datetime.now(timezone.utc) - PAGE_WINDOW)
        page = write_trend(run_dir / "sweep.html", shown.rows, shown.report, f"Sweep {run_id}", lines)
        latest = Path(runs_dir) / "history.html"
        shutil.copyfile(page, latest.with_name(".history.html.tmp"))
        latest.with_name(".history.html.tmp").replace(latest)
    ok = sum(j["status"] == OK for j in lines)
    print(render_table(shown.report))
    print(f"{ok} of {len(lines)} jobs ok; page: {page} (latest also at {latest})")
    if stopped is not None:
        raise stopped
    return EXIT_REGRESSION if shown.report.regressions else 0
