"""Sweep pieces that need no nodes: the lock, the per-node queues, the every-job report."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleet.cli import main
from fleet.errors import RunStateError
from fleet.runstate import FAILED, OK, JobState, RunState
from fleet.sweep import SweepLock, job_lines, prepare

LAB = """\
[edge]
e1 ansible_connection=local
[datacenter]
d1 ansible_connection=local
d2 ansible_connection=local
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    (tmp_path / "lab.ini").write_text(LAB)
    (tmp_path / "nightly.yaml").write_text(
        "inventory: lab.ini\ntasks: [resnet50, bert-99]\n"
        "overrides: {bert-99: {groups: [datacenter], scenarios: [Offline]}}\n"
    )
    return tmp_path


def test_second_sweep_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    held = r"another sweep is running \(pid \d+ since .*\); lock .*\.sweep\.lock"
    with SweepLock(tmp_path), pytest.raises(RunStateError, match=held), SweepLock(tmp_path):
        pass
    with SweepLock(tmp_path):  # released on exit
        pass


def test_lock_dies_with_its_process(tmp_path: Path) -> None:
    holder = textwrap.dedent(f"""
        import os, sys
        from fleet.sweep import SweepLock
        lock = SweepLock({str(tmp_path)!r}).__enter__()
        print("locked", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunStateError, match=f"pid {proc.pid}"):
            SweepLock(tmp_path).__enter__()
    finally:
        proc.kill()
        proc.wait()
    with SweepLock(tmp_path):  # a killed sweep leaves no stale lock behind
        pass


def test_every_node_gets_its_own_queue(lab: Path) -> None:
    prepared = prepare(lab / "nightly.yaml", run_id="sweep-x")
    queues = {h: [(s.task, tuple(s.scenarios)) for s in v] for h, v in prepared.specs.items()}
    assert queues == {
        "e1": [("resnet50", ("SingleStream", "MultiStream", "Offline"))],
        "d1": [("resnet50", ("Server", "Offline")), ("bert-99", ("Offline",))],
        "d2": [("resnet50", ("Server", "Offline")), ("bert-99", ("Offline",))],
    }
    assert {s.run_id for v in prepared.specs.values() for s in v} == {"sweep-x"}


def test_job_lines_cover_every_planned_job(lab: Path) -> None:
    specs = prepare(lab / "nightly.yaml").specs
    ran = JobState("d1/resnet50/Offline", "d1", "resnet50", "Offline", ["performance"], OK,
                   validity="VALID", result=1234.5, result_unit="Samples/s")  # fmt: skip
    broke = JobState("d2/bert-99/Offline", "d2", "bert-99", "Offline", ["performance"], FAILED,
                     stage="bench", error="harness crashed")  # fmt: skip
    state = RunState(run_id="s", settings={}, specs={}, jobs={ran.id: ran, broke.id: broke}, nodes={})
    lines = job_lines(specs, state)
    assert len(lines) == 3 + 3 + 3
    by_id = {(j["host"], j["task"], j["scenario"]): j for j in lines}
    assert by_id[("d1", "resnet50", "Offline")]["result"] == "1234 Samples/s"  # 4 significant digits
    assert by_id[("d2", "bert-99", "Offline")]["error"] == "harness crashed"
    assert by_id[("e1", "resnet50", "MultiStream")]["status"] == "not run"
    assert by_id[("e1", "resnet50", "MultiStream")]["system"] == "e1_cpu"


def test_dry_run_prints_each_queue(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--matrix", str(lab / "nightly.yaml"), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "e1: resnet50 [SingleStream MultiStream Offline]",
        "d1: resnet50 [Server Offline], bert-99 [Offline]",
        "d2: resnet50 [Server Offline], bert-99 [Offline]",
        "9 jobs, then 27 measured repeats (3 per performance job, interleaved); nodes that share hardware: "
        "one-at-a-time",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("inventory: lab.ini\ntasks: [resnet50]\nscenarios: [SingleStream]\n",
         "scenarios: scenario SingleStream is not allowed for resnet50 on datacenter host d1"),
        ("inventory: gone.ini\ntasks: [resnet50]\n", "inventory: "),
        ("inventory: lab.ini\ntasks: [resnet50, bert]\n", "tasks: unknown task 'bert'"),
    ],
)  # fmt: skip
def test_malformed_matrix_stops_the_sweep_with_one_line(lab: Path, capsys, text: str, message: str) -> None:
    (lab / "bad.yaml").write_text(text)
    assert main(["sweep", "--matrix", str(lab / "bad.yaml"), "--runs-dir", str(lab / "runs")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fleet: error: ") and message in err and err.count("\n") == 1, err
    assert not (lab / "runs").exists()  # nothing started
