"""The history database's schema, as an ordered list of migrations.

`PRAGMA user_version` records how many migrations a file has seen; opening a file applies the
missing ones in order, each in its own transaction, so a crash mid-upgrade leaves the file at
the last complete version. A file newer than this code is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

from fleet.errors import FleetError

# Each entry is one migration: the statements that move version i to version i+1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            run_id        TEXT PRIMARY KEY,
            started       TEXT NOT NULL,   -- ISO 8601 UTC, the run's first job start
            ingested      TEXT NOT NULL,
            kind          TEXT NOT NULL,   -- run | sweep
            matrix        TEXT,            -- the sweep's matrix file
            threshold     REAL,            -- the matrix's regression threshold (fraction)
            baseline_runs INTEGER          -- the matrix's N for the median baseline
        )""",
        """CREATE TABLE results (
            run_id            TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            time              TEXT NOT NULL,   -- ISO 8601 UTC, when this job started
            host              TEXT NOT NULL,   -- inventory hostname
            system            TEXT NOT NULL,   -- system name (node.json), else host
            category          TEXT,
            host_digest       TEXT NOT NULL,   -- sha256 prefix of the node's host facts
            host_facts        TEXT NOT NULL,   -- JSON, for explaining a change
            task              TEXT NOT NULL,
            scenario          TEXT NOT NULL,
            mode              TEXT NOT NULL,
            profile           TEXT,
            backend           TEXT,
            execution_provider TEXT,
            outcome           TEXT NOT NULL,   -- ok | failed | missing
            error             TEXT,
            metric            TEXT,            -- unit of value: Samples/s, Queries/s, Latency (ms)
            value             REAL,
            validity          TEXT,            -- VALID | INVALID | NULL
            accuracy          REAL,
            accuracy_target   REAL,
            verify            TEXT,            -- TEST PASS | TEST FAIL for compliance modes
            lat_mean_ms       REAL,
            lat_p50_ms        REAL,
            lat_p90_ms        REAL,
            lat_p95_ms        REAL,
            lat_p97_ms        REAL,
            lat_p99_ms        REAL,
            lat_p999_ms       REAL,
            versions          TEXT NOT NULL,   -- JSON
            versions_digest   TEXT NOT NULL,
            synthetic         INTEGER NOT NULL,
            duration_s        REAL,
            PRIMARY KEY (run_id, host, task, scenario, mode)
        )""",
        "CREATE INDEX results_series ON results(system, task, scenario, mode, time)",
    ),
    (
        # Repeated measurements a night (fleet sweep `repeats:`), and hardware sharing.
        "ALTER TABLE results ADD COLUMN repeat_values TEXT",  # JSON list of the measured runs' results
        "ALTER TABLE results ADD COLUMN repeat_cv REAL",
        "ALTER TABLE results ADD COLUMN shared_with TEXT",  # comma list of hosts
        "ALTER TABLE runs ADD COLUMN min_runs INTEGER",  # the matrix's clean nights a verdict needs
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: tuple[tuple[str, ...], ...] = MIGRATIONS) -> int:
    """Bring `conn` (autocommit mode) up to `len(migrations)`; returns the version it started at."""
    start = conn.execute("PRAGMA user_version").fetchone()[0]
    if start > len(migrations):
        raise FleetError(
            f"history database is schema version {start} but this fleet knows only "
            f"{len(migrations)}: upgrade mlperf-fleet to read it"
        )
    for version in range(start, len(migrations)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return start
