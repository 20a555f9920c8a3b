"""The SQLite history store: schema migrations, transactional and idempotent ingest."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.history.ingest import FailedJob, read_run
from fleet.history.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from fleet.history.store import HistoryStore, RunRecord

from .factory import T0, Host, entry, write_run


def _run(tmp_path: Path, run_id: str = "r1", value: float = 100.0) -> Path:
    return write_run(
        tmp_path / "runs",
        run_id,
        [
            Host("node1", [entry("resnet50", "Offline", value=value),
                           entry("resnet50", "Offline", "accuracy", accuracy=99.5)]),
            Host("node2", [entry("resnet50", "SingleStream", value=1.5)], category="edge"),
        ],
    )  # fmt: skip


def test_ingest_stores_every_manifest_entry(tmp_path: Path) -> None:
    run, rows = read_run(_run(tmp_path))
    with HistoryStore(tmp_path / "h.sqlite") as store:
        assert store.replace_run(run, rows) == 3
        got = store.results()
    assert {(r.host, r.scenario, r.mode) for r in got} == {
        ("node1", "Offline", "performance"), ("node1", "Offline", "accuracy"),
        ("node2", "SingleStream", "performance"),
    }  # fmt: skip
    perf = next(r for r in got if r.host == "node1" and r.mode == "performance")
    assert (perf.system, perf.value, perf.metric, perf.validity) == ("node1_cpu", 100.0, "Samples/s", "VALID")
    assert perf.synthetic is True and perf.time == T0.isoformat()
    acc = next(r for r in got if r.mode == "accuracy")
    assert acc.accuracy == 99.5 and acc.accuracy_target == pytest.approx(76.46 * 0.99)
    assert run.started == T0.isoformat()


def test_latency_percentiles_come_from_the_detail_log(tmp_path: Path) -> None:
    ss = entry("resnet50", "SingleStream", value=2.5)
    ss["latencies_ns"] = {
        "result_90.00_percentile_latency_ns": 2_500_000,
        "result_mean_latency_ns": 2_000_000,
        "result_99.90_percentile_latency_ns": 9_000_000,
    }
    ms = entry("resnet50", "MultiStream", value=20.0)
    ms["latencies_ns"] = {"result_99.00_percentile_per_query_latency_ns": 20_000_000}
    root = write_run(tmp_path / "runs", "r1", [Host("node1", [ss, ms, entry()])])
    rows = {r.scenario: r for r in read_run(root)[1]}
    assert (rows["SingleStream"].lat_p90_ms, rows["SingleStream"].lat_mean_ms) == (2.5, 2.0)
    assert rows["SingleStream"].lat_p999_ms == 9.0 and rows["SingleStream"].lat_p50_ms is None
    assert rows["MultiStream"].lat_p99_ms == 20.0
    assert rows["Offline"].lat_p90_ms is None  # no detail log: nothing invented


def test_reingest_replaces_instead_of_duplicating(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    with HistoryStore(tmp_path / "h.sqlite") as store:
        store.replace_run(*read_run(run_dir))
        _run(tmp_path, value=80.0)  # the run was resumed and its manifest rewritten
        store.replace_run(*read_run(run_dir))
        got = store.results(scenarios=["Offline"])
        assert len(store.runs()) == 1
    assert [r.value for r in got if r.mode == "performance"] == [80.0]


def test_failed_ingest_leaves_no_rows(tmp_path: Path) -> None:
    run, rows = read_run(_run(tmp_path))

    def rows_then_crash():
        yield rows[0]
        raise RuntimeError("collector died")

    with HistoryStore(tmp_path / "h.sqlite") as store:
        with pytest.raises(RuntimeError):
            store.replace_run(run, rows_then_crash())
        assert store.results() == [] and store.runs() == []


def test_killed_process_mid_ingest_leaves_no_rows(tmp_path: Path) -> None:
    """A SIGKILL inside the transaction: the next open rolls the hot journal back."""
    db = tmp_path / "h.sqlite"
    run_dir = _run(tmp_path)
    with HistoryStore(db) as store:
        store.replace_run(*read_run(_run(tmp_path, "r0")))
    child = textwrap.dedent(f"""
        import os, signal
        from fleet.history.ingest import read_run
        from fleet.history.store import HistoryStore
        run, rows = read_run({str(run_dir)!r})
        def rows_then_die():
            yield rows[0]
            yield rows[1]
            os.kill(os.getpid(), signal.SIGKILL)
        HistoryStore({str(db)!r}).replace_run(run, rows_then_die())
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    with HistoryStore(db) as store:
        assert {r.run_id for r in store.results()} == {"r0"}
        assert [r.run_id for r in store.runs()] == ["r0"]
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_failed_jobs_mark_their_rows_or_become_missing_rows(tmp_path: Path) -> None:
    root = write_run(tmp_path / "runs", "r1", [
        Host("node1", [entry(), entry(mode="accuracy", accuracy=99.0)]),
        Host("node3", [], manifest=False),
    ])  # fmt: skip
    failed = [
        FailedJob("node1", "resnet50", "Offline", "performance", "harness exited with 1"),
        FailedJob("node3", "resnet50", "Offline", "performance", "ssh: connection refused"),
    ]
    _, rows = read_run(root, failed=failed)
    assert [(r.host, r.mode, r.outcome, r.error, r.value) for r in rows] == [
        ("node1", "performance", "failed", "harness exited with 1", 100.0),  # run.json has the last word
        ("node1", "accuracy", "ok", None, None),
        ("node3", "performance", "missing", "ssh: connection refused", None),
    ]
    assert rows[2].system == "node3_cpu"


def test_migrations_apply_in_order_and_set_user_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    extra = (*MIGRATIONS, ("ALTER TABLE results ADD COLUMN note TEXT",))
    assert migrate(conn) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert migrate(conn, extra) == SCHEMA_VERSION  # an upgrade applies only the new step
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert "note" in {r[1] for r in conn.execute("PRAGMA table_info(results)")}


def test_a_failing_migration_keeps_the_previous_version(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)
    migrate(conn)
    broken = (*MIGRATIONS, ("CREATE TABLE extra (x)", "THIS IS NOT SQL"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() is None


def test_newer_database_is_refused_with_one_line(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    sqlite3.connect(db).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    with pytest.raises(FleetError, match=r"schema version .* upgrade mlperf-fleet"):
        HistoryStore(db)


def test_filters_and_since(tmp_path: Path) -> None:
    from datetime import timedelta

    runs = tmp_path / "runs"
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for i in range(3):
            when = T0 + timedelta(days=i)
            root = write_run(runs, f"r{i}", [
                Host("node1", [entry("resnet50", "Offline", started=when)]),
                Host("node2", [entry("retinanet", "Offline", started=when)], system="big"),
            ])  # fmt: skip
            store.replace_run(*read_run(root))
        assert len(store.results()) == 6
        assert {r.run_id for r in store.results(since=T0 + timedelta(days=1))} == {"r1", "r2"}
        assert {r.task for r in store.results(systems=["big"])} == {"retinanet"}
        assert store.results(tasks=["resnet50"], systems=["big"]) == []


def test_row_of_another_run_is_refused(tmp_path: Path) -> None:
    _, rows = read_run(_run(tmp_path))
    other = RunRecord("other", T0.isoformat(), T0.isoformat())
    with HistoryStore(tmp_path / "h.sqlite") as store:
        with pytest.raises(FleetError, match="while ingesting run other"):
            store.replace_run(other, rows)
        assert store.runs() == []
