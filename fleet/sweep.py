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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from fleet.errors import RunStateError
from fleet.harness.spec import RunSpec
from fleet.inventory import Inventory, load_inventory
from fleet.matrix import Matrix, expand, group_members, load_matrix
from fleet.plan import jobs_of
from fleet.runstate import RunState

LOCK_NAME = ".sweep.lock"


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


def new_run_id(now: datetime | None = None) -> str:
    return "sweep-" + (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")


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


def job_lines(specs: Mapping[str, list[RunSpec]], state: RunState | None) -> list[dict[str, str]]:
    """Every planned job with what became of it (a job run.json never reached is `not run`)."""
    jobs = state.jobs if state else {}
    systems = {host: host_specs[0].system_name for host, host_specs in specs.items() if host_specs}
    lines = []
    for job in jobs_of(specs):
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
                "modes": ",".join(job.modes),
                "status": done.status if done else "not run",
                "result": result,
                "validity": (done.validity if done else None) or "",
                "error": ((done.error or "") if done else "") or "",
            }
        )
    return lines


def write_jobs(run_dir: Path, lines: list[dict[str, str]]) -> Path:
    path = Path(run_dir) / "sweep.json"
    path.write_text(json.dumps({"jobs": lines}, indent=2) + "\n", encoding="utf-8")
    return path
