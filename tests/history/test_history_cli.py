"""`fleet history` end to end on generated run folders: ingest, table, page, exit status."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.harness.spec import RunSpec
from fleet.runstate import FAILED, OK, JobState, NodeState, RunState

from .factory import T0, Host, entry, write_run


def _nights(runs: Path, values: list[tuple[float, float]]) -> list[str]:
    ids = []
    for i, (a, b) in enumerate(values):
        when = T0 + timedelta(days=i)
        write_run(runs, f"n{i}", [Host("a", [entry(value=a, started=when)]),
                                   Host("b", [entry(value=b, started=when)])])  # fmt: skip
        ids.append(f"n{i}")
    return ids


def _ingest_args(ids: list[str]) -> list[str]:
    return [arg for i in ids for arg in ("--ingest", i)]


STEADY = [(100, 100), (101, 99), (99, 100), (100, 101), (102, 100)]


def _table(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line.startswith(("a_cpu", "b_cpu"))}


def test_flags_the_slowed_system_on_its_second_night_and_exits_3(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    ids = _nights(runs, [*STEADY, (60, 100), (61, 100)])
    rc = main(["history", "--runs-dir", str(runs), *_ingest_args(ids), "--html"])
    out = capsys.readouterr().out
    assert rc == 3
    table = _table(out)
    assert "REGRESSION" in table["a_cpu"] and "-39.0%" in table["a_cpu"] and "since run n5" in table["a_cpu"]
    assert "REGRESSION" not in table["b_cpu"] and " ok " in table["b_cpu"]
    assert "run n6: 1 confirmed regression(s), 0 broken or flagged job(s), 0 suspect" in out
    assert (runs / "history.html").is_file() and (runs / "history.sqlite").is_file()
    # The first slow night is suspect, which is no alarm; a looser threshold or the other system is quiet.
    assert main(["history", "--runs-dir", str(runs), "--run", "n5"]) == 0
    assert "suspect" in _table(capsys.readouterr().out)["a_cpu"]
    assert main(["history", "--runs-dir", str(runs), "--threshold", "50%"]) == 0
    assert main(["history", "--runs-dir", str(runs), "--system", "b_cpu"]) == 0
    assert main(["history", "--runs-dir", str(runs), "--min-runs", "6"]) == 0  # too few nights for 6


def test_a_sweeps_own_policy_is_used_and_survives_reingest(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    ids = _nights(runs, [*STEADY[:3], (60, 100), (60, 100)])
    policy = {"regression": {"threshold": 0.5, "baseline_runs": 3, "min_runs": 3}, "jobs": []}
    (runs / "n4" / "sweep.json").write_text(json.dumps({"matrix": "/lab/nightly.yaml", **policy}))
    for _ in range(2):
        assert main(["history", "--runs-dir", str(runs), *_ingest_args(ids)]) == 0  # -40% < 50%
    assert "threshold 50.0%; bar max(threshold, 3 x night-to-night spread); baseline: median of the last 3 " \
        "clean nights, at least 3" in capsys.readouterr().out
    assert main(["history", "--runs-dir", str(runs), "--threshold", "30%"]) == 3  # the option wins


def test_reingest_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    ids = _nights(runs, [(100, 100), (100, 100)])
    assert main(["history", "--runs-dir", str(runs), *_ingest_args(ids)]) == 0
    assert main(["history", "--runs-dir", str(runs), *_ingest_args(ids)]) == 0
    out = capsys.readouterr().out
    assert out.count("stored 2 results of n1") == 2
    line = next(x for x in out.splitlines()[::-1] if x.startswith("a_cpu"))
    assert "clean night 2 of the 5" in line  # two nights, not two copies of each


def test_failed_jobs_in_run_json_become_breaks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    _nights(runs, [(100, 100)])
    write_run(runs, "n1", [Host("a", [entry(value=100, started=T0 + timedelta(days=1))])])
    spec = RunSpec(task="resnet50", scenarios=["Offline"], modes=["performance"])
    ok = JobState("a/resnet50/Offline", "a", "resnet50", "Offline", ["performance"], OK)
    broken = JobState("b/resnet50/Offline", "b", "resnet50", "Offline", ["performance"], FAILED,
                      stage="deploy", error="pip: no matching wheel")  # fmt: skip
    state = RunState(
        run_id="n1", settings={}, specs={"a": [asdict(spec)], "b": [asdict(spec)]},
        jobs={ok.id: ok, broken.id: broken}, nodes={"b": NodeState("b", "edge", "b_cpu")},
    )  # fmt: skip
    state.save(runs / "n1" / "run.json")
    assert main(["history", "--runs-dir", str(runs), "--ingest", "n0", "--ingest", "n1"]) == 3
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("b_cpu"))
    assert "- / broke" in line and "performance missing: pip: no matching wheel" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "fleet: error: --since 'yesterday': give an age (30d, 12h, 2w)"),
        (["--threshold", "lots"], "fleet: error: --threshold 'lots': give a percentage such as 5%"),
        (["--ingest", "nope"], "fleet: error: --ingest nope: no run folder"),
        ([], "fleet: error: no history at"),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args, message) -> None:
    rc = main(["history", "--runs-dir", str(tmp_path / "runs"), *args])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(message) and err.count("\n") == 1, err


def test_since_keeps_only_recent_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    ids = _nights(runs, [*STEADY, (50, 100), (50, 100)])
    assert main(["history", "--runs-dir", str(runs), *_ingest_args(ids)]) == 3
    since = (T0 + timedelta(hours=12)).isoformat()
    assert main(["history", "--runs-dir", str(runs), "--since", since]) == 0  # no baseline left in view
