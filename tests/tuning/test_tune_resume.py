"""`fleet tune --resume`: only the failed or missing jobs are tuned again, with the run's budget.

The refusals and the bookkeeping run in-process without nodes (orchestrate.execute replaced
by a scripted one); the last test loses a real sshd test node mid-bench and resumes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testnodes import tree_digest

from fleet import cli, orchestrate
from fleet.commands import tune
from fleet.runstate import FAILED, OK, JobState, NodeState, RunState
from fleet.wheelhouse import build_project_wheel

FLEET = [sys.executable, "-m", "fleet.cli"]
SMALL = ["--synthetic", "--synthetic-variant", "small", "--synthetic-samples", "32", "--plain"]
LAB = ("[edge]\nnode1 ansible_connection=local fleet_system_name=box_edge\n"
       "[datacenter]\nnode2 ansible_connection=local\n")
OFFLINE1, OFFLINE2, SERVER2 = "node1/resnet50/Offline", "node2/resnet50/Offline", "node2/resnet50/Server"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """fleet in-process: exit status and stderr lines (an escaping exception fails the test)."""
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().err.strip().splitlines()


# ----- refusals ----------------------------------------------------------------------------


def test_resume_of_unknown_run_is_one_line(tmp_path: Path, capsys) -> None:
    rc, err = run_cli(capsys, "tune", "--runs-dir", str(tmp_path), "--resume", "nope")
    assert rc == 1
    assert err == [f"fleet: error: no run 'nope': {tmp_path}/nope/run.json does not exist"]


@pytest.mark.parametrize("extra, drop", [
    (["--budget", "5m"], "--budget"),
    (["-t", "resnet50", "--scenario", "Offline", "-i", "lab.ini"], "--inventory/--task/--scenario"),
    (["--safety-margin", "0.1", "--trial-s", "2", "--profile", "smoke"],
     "--safety-margin/--trial-s/--profile"),
    (["--synthetic", "--synthetic-samples", "8", "--limit", "node1", "--run-id", "x"],
     "--synthetic/--synthetic-samples/--limit/--run-id"),
])
def test_resume_refuses_plan_options(tmp_path: Path, capsys, extra: list[str], drop: str) -> None:
    _run_dir(tmp_path / "t1", modes=["tune"], tune_file=True)
    rc, err = run_cli(capsys, "tune", "--runs-dir", str(tmp_path), "--resume", "t1", *extra)
    assert rc == 1
    assert err == ["fleet: error: --resume tunes again as the run was planned, its budget included; "
                   f"drop {drop}"]


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "run.json").write_text("{not json"), "run.json is corrupt"),
    (lambda d: (d / "run.json").write_text('{"version": 1}'), "run.json is corrupt (no usable 'run_id')"),
    (lambda d: (d / "run.json").write_text("[1]"), "run.json is corrupt"),
    (lambda d: (d / "tune.json").write_text("{"), "tune.json is corrupt"),
    (lambda d: (d / "tune.json").write_text('{"tune_file_version": 1, "commands": []}'),
     "tune.json is corrupt"),
    (lambda d: (d / "tune.json").write_text(json.dumps({
        "tune_file_version": 1, "budget_s": 60, "safety_margin": 0.05, "trial_s": 1, "commands": {}})),
     f"tune.json has no tune command for {OFFLINE1}; cannot resume"),
    (lambda d: (d / "tune.json").unlink(), "predates fleet tune --resume and its budget is unknown"),
])
def test_resume_of_a_damaged_run_is_one_line(tmp_path: Path, capsys, damage: Callable[[Path], Any],
                                             message: str) -> None:
    damage(_run_dir(tmp_path / "t1", modes=["tune"], tune_file=True))
    rc, err = run_cli(capsys, "tune", "--runs-dir", str(tmp_path), "--resume", "t1")
    assert rc == 1 and len(err) == 1 and err[0].startswith("fleet: error: ") and message in err[0], err


def test_resume_of_a_fleet_run_points_to_fleet_run(tmp_path: Path, capsys) -> None:
    _run_dir(tmp_path / "r1", modes=["performance"], tune_file=False)
    rc, err = run_cli(capsys, "tune", "--resume", str(tmp_path / "r1"))
    assert rc == 1
    assert err == ["fleet: error: run r1 is not a tuning run (no tune.json); "
                   "resume it with fleet run --resume"]


def _run_dir(run_dir: Path, modes: list[str], tune_file: bool) -> Path:
    """A run directory with one job on node1 (no nodes: nothing here ever runs)."""
    run_dir.mkdir(parents=True)
    (run_dir.parent / "lab.ini").write_text(LAB)
    job = JobState(OFFLINE1, "node1", "resnet50", "Offline", modes, status=FAILED)
    settings = {"inventory": str(run_dir.parent / "lab.ini"), "tasks": ["resnet50"]}
    state = RunState(run_id=run_dir.name, settings=settings, specs={}, jobs={OFFLINE1: job},
                     nodes={"node1": NodeState("node1", "edge", "box_edge")})
    state.save(run_dir / "run.json")
    if tune_file:
        tune.TuneFile(60.0, 0.05, 1.0, {OFFLINE1: ["tune", "--budget-s", "60.0"]}).save(run_dir)
    return run_dir


# ----- what a resume reruns and files (scripted nodes) -----------------------------------


class ScriptedNodes:
    """Stands in for orchestrate.execute: each job ends as `ok` says; ok jobs leave a record."""

    def __init__(self, ok: dict[str, bool]) -> None:
        self.ok = ok
        self.calls: list[dict[str, list[str]]] = []  # per attempt: job id -> harness command

    def __call__(self, run_dir: Path, inventory, specs, settings, *, state=None, progress=None,
                 verbosity=0, commands=None) -> RunState:
        state = state or orchestrate.new_state(run_dir.name, settings, inventory, specs)
        todo = [job for job in state.jobs.values() if job.status != OK]
        state.attempts.append({"jobs": [job.id for job in todo]})
        self.calls.append({job.id: commands[job.id] for job in todo})
        for job in todo:
            job.attempts += 1
            job.status = OK if self.ok[job.id] else FAILED
            job.error = None if job.status == OK else "unreachable during bench"
            if job.status == OK:
                _tuned_on_node(run_dir, job, float(commands[job.id][2]))
        state.save(run_dir / "run.json")
        return state


def _tuned_on_node(run_dir: Path, job: JobState, budget_s: float) -> None:
    """What the harness leaves in raw/<host>/tuning.json: this scenario merged in."""
    path = run_dir / "raw" / job.host / "tuning.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {
        "tuning_version": 1, "facts_digest": f"digest-{job.host}", "facts": {"usable_cpus": 1}, "tasks": {}}
    data["tasks"].setdefault(job.task, {})[job.scenario] = {
        "scenario": job.scenario, "status": "ok", "error": None, "budget_s": budget_s,
        "settings": {"threads": 1}, "tuning": {"threads": 1, "offline_expected_qps": 50.0},
        "trials": [], "trial_count": 0, "wall_s": budget_s, "knob_search": {"stopped_by": "budget"}}
    path.write_text(json.dumps(data))


@pytest.fixture
def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, bool]], ScriptedNodes]:
    """script(ok): the nodes of the next fleet call, with tmp_path/lab.ini as their inventory."""
    (tmp_path / "lab.ini").write_text(LAB)

    def script(ok: dict[str, bool]) -> ScriptedNodes:
        nodes = ScriptedNodes(ok)
        monkeypatch.setattr(tune.orchestrate, "execute", nodes)
        return nodes

    return script


def test_resume_tunes_only_the_failed_job_with_the_first_commands(tmp_path: Path, capsys, scripted) -> None:
    runs = tmp_path / "runs"
    first = scripted({OFFLINE1: True, OFFLINE2: True, SERVER2: False})
    rc, err = run_cli(capsys, "tune", "-i", str(tmp_path / "lab.ini"), "-t", "resnet50", "-s", "Offline",
                      "-s", "Server", "--budget", "90s", "--safety-margin", "0.1", "--runs-dir", str(runs),
                      "--run-id", "t1", "--plain")
    assert rc == 1
    assert err[-1] == f"fleet: 1 of 3 jobs failed; redo them: fleet tune --runs-dir {runs} --resume t1"
    saved = json.loads((runs / "t1" / "tune.json").read_text())
    assert saved["budget_s"] == 90.0 and saved["commands"] == first.calls[0]
    assert first.calls[0][SERVER2][:3] == ["tune", "--budget-s", "60.0"]  # Server's share: 2 of 3
    edge_file = runs / "tuning" / "box_edge" / "resnet50.json"
    edge_bytes, edge_mtime = edge_file.read_bytes(), edge_file.stat().st_mtime_ns
    dc_file = runs / "tuning" / "node2_cpu" / "resnet50.json"
    assert set(json.loads(dc_file.read_text())["scenarios"]) == {"Offline"}

    again = scripted({SERVER2: True})
    rc, err = run_cli(capsys, "tune", "--runs-dir", str(runs), "--resume", "t1", "--plain")
    assert rc == 0, err
    assert again.calls == [{SERVER2: first.calls[0][SERVER2]}]  # the same budget share and options
    assert edge_file.read_bytes() == edge_bytes and edge_file.stat().st_mtime_ns == edge_mtime
    assert f"fleet: stored {dc_file}" in err and f"fleet: stored {edge_file}" not in err
    assert set(json.loads(dc_file.read_text())["scenarios"]) == {"Offline", "Server"}
    summary = json.loads((runs / "t1" / "tuning.json").read_text())["hosts"]
    assert {h: set(t["resnet50"]["scenarios"]) for h, t in summary.items()} == {
        "node1": {"Offline"}, "node2": {"Offline", "Server"}}
    assert "node2_cpu | resnet50 | Server" in (runs / "t1" / "tuning.md").read_text()


def test_resume_of_a_complete_run_tunes_nothing(tmp_path: Path, capsys, scripted) -> None:
    runs = tmp_path / "runs"
    scripted({OFFLINE1: True})
    argv = ["tune", "-i", str(tmp_path / "lab.ini"), "--limit", "node1", "-t", "resnet50", "-s", "Offline",
            "--budget", "30s"]
    assert run_cli(capsys, *argv, "--runs-dir", str(runs), "--run-id", "t1", "--plain")[0] == 0
    nodes = scripted({})
    rc, err = run_cli(capsys, "tune", "--runs-dir", str(runs), "--resume", "t1", "--plain")
    assert rc == 0 and nodes.calls == [{}] and not [line for line in err if "stored" in line], err


def test_a_new_run_may_not_reuse_a_run_directory(tmp_path: Path, capsys) -> None:
    _run_dir(tmp_path / "t1", modes=["tune"], tune_file=True)
    rc, err = run_cli(capsys, "tune", "-i", str(tmp_path / "lab.ini"), "-t", "resnet50", "--runs-dir",
                      str(tmp_path), "--run-id", "t1")
    assert rc == 1 and err == [f"fleet: error: run directory {tmp_path}/t1 exists; use --resume t1 or "
                               "another --run-id"]


# ----- on real sshd test nodes -------------------------------------------------------------


@pytest.mark.integration
def test_lost_node_is_tuned_again_alone(testnodes, tmp_path: Path) -> None:
    """node2 loses its sshd while it tunes; --resume tunes node2 alone and node1's files stay."""
    cache = tmp_path / "cache"
    env = {**os.environ, "FLEET_CACHE_DIR": str(cache),  # one node wheel for both attempts
           "FLEET_NODE_WHEEL": str(build_project_wheel(cache).path)}
    runs = tmp_path / "runs"
    args = [*FLEET, "tune", "-i", str(testnodes.inventory), "--limit", "node1,node2", "-t", "resnet50",
            "--scenario", "Offline", "--budget", "20s", "--safety-margin", "0.1", "--runs-dir", str(runs),
            "--run-id", "lost", *SMALL]
    pidfile = Path(testnodes.node("node2").workdir) / "runs" / "lost" / "specs" / "resnet50-Offline.pid"
    proc = testnodes.run_losing("node2", args, pidfile, env)  # node2's sshd dies while it tunes
    err = proc.stderr
    assert proc.returncode == 1, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"fleet: 1 of 2 jobs failed; redo them: fleet tune --runs-dir {runs} --resume lost")
    state = RunState.load(runs / "lost" / "run.json")
    lost = state.jobs["node2/resnet50/Offline"]
    assert lost.status == "failed" and lost.stage == "bench" and "unreachable" in lost.error, lost
    assert state.jobs["node1/resnet50/Offline"].status == "ok", (state.jobs["node1/resnet50/Offline"], err)
    edge_file = runs / "tuning" / "test_node1" / "resnet50.json"
    edge_bytes, edge_mtime = edge_file.read_bytes(), edge_file.stat().st_mtime_ns
    assert not (runs / "tuning" / "test_node2").exists()
    kept = tree_digest(runs / "lost" / "raw" / "node1")

    again = subprocess.run([*FLEET, "tune", "--runs-dir", str(runs), "--resume", "lost", "--plain"],
                           capture_output=True, text=True, timeout=600, env=env, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    state = RunState.load(runs / "lost" / "run.json")
    assert state.attempts[-1]["jobs"] == ["node2/resnet50/Offline"]
    assert [state.jobs[f"{h}/resnet50/Offline"].attempts for h in ("node1", "node2")] == [1, 2]
    assert edge_file.read_bytes() == edge_bytes and edge_file.stat().st_mtime_ns == edge_mtime
    assert tree_digest(runs / "lost" / "raw" / "node1") == kept, "node1 was rewritten by the resume"
    dc = json.loads((runs / "tuning" / "test_node2" / "resnet50.json").read_text())
    rec = dc["scenarios"]["Offline"]
    assert dc["run_id"] == "lost" and rec["status"] == "ok"
    assert rec["budget_s"] == 20.0 and rec["safety_margin"] == 0.1  # the first run's budget and options
    summary = json.loads((runs / "lost" / "tuning.json").read_text())["hosts"]
    assert set(summary) == {"node1", "node2"}
    report = (runs / "lost" / "tuning.md").read_text()
    assert "test_node1 | resnet50 | Offline" in report and "test_node2 | resnet50 | Offline" in report
