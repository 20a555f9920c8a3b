"""The SQLite history store: every result of every run, one file under the runs folder.

A run is written in one transaction that first deletes whatever that run had stored, so
ingesting the same run again replaces it (idempotent) and a crash mid-ingest leaves the run
as it was before (SQLite's journal rolls the half-written transaction back on next open).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from pathlib import Path

from fleet.errors import FleetError
from fleet.history.schema import migrate

DB_NAME = "history.sqlite"


class HistoryError(FleetError):
    """The history database cannot be opened, read or written."""


@dataclass(frozen=True)
class RunRecord:
    """One ingested run (a `fleet run` or a whole sweep)."""

    run_id: str
    started: str
    ingested: str
    kind: str = "run"
    matrix: str | None = None
    threshold: float | None = None
    baseline_runs: int | None = None
    min_runs: int | None = None


@dataclass(frozen=True)
class ResultRow:
    """One (run, host, task, scenario, mode): the columns of `results`, in order."""

    run_id: str
    time: str
    host: str
    system: str
    category: str | None
    host_digest: str
    host_facts: str
    task: str
    scenario: str
    mode: str
    profile: str | None
    backend: str | None
    execution_provider: str | None
    outcome: str
    error: str | None
    metric: str | None
    value: float | None
    validity: str | None
    accuracy: float | None
    accuracy_target: float | None
    verify: str | None
    lat_mean_ms: float | None
    lat_p50_ms: float | None
    lat_p90_ms: float | None
    lat_p95_ms: float | None
    lat_p97_ms: float | None
    lat_p99_ms: float | None
    lat_p999_ms: float | None
    versions: str
    versions_digest: str
    synthetic: bool
    duration_s: float | None
    repeat_values: str | None = None  # JSON list: the night's measured repeats (VALID ones)
    repeat_cv: float | None = None  # their run-to-run coefficient of variation
    shared_with: str | None = None  # nodes on the same hardware that measured at the same time


RESULT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
RUN_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RunRecord))


def default_db_path(runs_dir: Path) -> Path:
    return Path(runs_dir) / DB_NAME


class HistoryStore:
    """An open history database; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are explicit BEGIN/COMMIT, never implicit.
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            self._conn.execute("PRAGMA foreign_keys = ON")
            migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"cannot open history database {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def replace_run(self, run: RunRecord, rows: Iterable[ResultRow]) -> int:
        """Store `run` and its rows in one transaction, replacing what the run had; returns rows."""
        conn = self._conn
        count = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM results WHERE run_id = ?", (run.run_id,))
            conn.execute(
                f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                astuple(run),
            )
            insert = (
                f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(RESULT_COLUMNS))})"
            )
            for row in rows:
                if row.run_id != run.run_id:
                    raise HistoryError(f"row of run {row.run_id} offered while ingesting run {run.run_id}")
                conn.execute(insert, astuple(row))
                count += 1
        except BaseException as exc:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):
                raise HistoryError(f"run {run.run_id} holds the same job twice: {exc}") from None
            raise
        conn.execute("COMMIT")
        return count

    def runs(self) -> list[RunRecord]:
        cur = self._conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs ORDER BY started, run_id")
        return [RunRecord(*r) for r in cur.fetchall()]

    def results(
        self,
        *,
        tasks: Sequence[str] = (),
        systems: Sequence[str] = (),
        scenarios: Sequence[str] = (),
        since: datetime | None = None,
    ) -> list[ResultRow]:
        """Rows matching every given filter, oldest run first."""
        where: list[str] = []
        params: list[object] = []
        for column, values in (("r.task", tasks), ("r.system", systems), ("r.scenario", scenarios)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if since is not None:
            where.append("u.started >= ?")
            params.append(since.isoformat())
        sql = (
            f"SELECT {', '.join('r.' + c for c in RESULT_COLUMNS)} FROM results r "
            "JOIN runs u ON u.run_id = r.run_id"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY u.started, r.run_id, r.system, r.task, r.scenario, r.mode"
        )
        rows = self._conn.execute(sql, params).fetchall()
        return [_row(r) for r in rows]


def _row(values: tuple[object, ...]) -> ResultRow:
    data = dict(zip(RESULT_COLUMNS, values, strict=True))
    data["synthetic"] = bool(data["synthetic"])
    return ResultRow(**data)  # type: ignore[arg-type]
