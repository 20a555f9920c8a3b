"""`fleet run` end to end on three real sshd nodes (one edge with a CPU quota, two datacenter).

Real ansible-runner, real wheelhouse deploy (the nodes have no route to any index), real
harness and LoadGen on a reduced synthetic ResNet50. The full run provisions the nodes once
per session; later tests reuse them (provision and deploy are then skipped on the nodes).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from testnodes import tree_digest

from fleet.config import RunSettings, validate
from fleet.harness.spec import RunSpec
from fleet.inventory import load_inventory
from fleet.orchestrate import execute
from fleet.runstate import RunState
from fleet.wheelhouse import build_project_wheel

pytestmark = pytest.mark.integration

FLEET = [sys.executable, "-m", "fleet.cli"]
SMALL = ["--synthetic", "--synthetic-variant", "small", "--synthetic-samples", "32", "--plain"]


def fleet(*args: str, cache: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*FLEET, *args], capture_output=True, text=True, timeout=timeout, env=cache, check=False
    )


@pytest.fixture(scope="session")
def fleet_cache(tmp_path_factory) -> dict[str, str]:
    """The environment of every `fleet` call: one cache, one node wheel for the session.

    Pinning the wheel keeps "a second run skips deploy" true while someone edits the tree.
    """
    cache = tmp_path_factory.mktemp("fleet-cache")
    wheel = build_project_wheel(cache)
    return {**os.environ, "FLEET_CACHE_DIR": str(cache), "FLEET_NODE_WHEEL": str(wheel.path)}


@pytest.fixture(scope="session")
def full_run(testnodes, fleet_cache, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    proc = fleet("run", "--inventory", str(testnodes.inventory), "--task", "resnet50", "--profile", "smoke",
                 "--runs-dir", str(runs), "--run-id", "full", *SMALL, cache=fleet_cache)  # fmt: skip
    return proc, runs / "full"


def test_full_run_collects_valid_results_from_every_node(full_run):
    proc, run_dir = full_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = RunState.load(run_dir / "run.json")
    expected = {
        "node1": {"SingleStream", "MultiStream", "Offline"},
        "node2": {"Server", "Offline"},
        "node3": {"Server", "Offline"},
    }
    got: dict[str, set[str]] = {}
    for job in state.jobs.values():
        got.setdefault(job.host, set()).add(job.scenario)
        assert job.status == "ok", (job.id, job.error)
        assert job.result is not None and job.accuracy is not None and job.accuracy > 90, job.id
        # Server's smoke run (459 queries) allows no query over the 15 ms bound; with three
        # nodes on two shared cores one scheduling hiccup makes it INVALID (see the report).
        if job.scenario != "Server":
            assert job.validity == "VALID", (job.id, job.result, job.result_unit, job.duration_s)
        else:
            assert job.validity in ("VALID", "INVALID"), job.id
    assert got == expected
    for host, scenarios in expected.items():
        raw = run_dir / "raw" / host
        manifest = json.loads((raw / "manifest.json").read_text())
        assert {(r["scenario"], r["mode"]) for r in manifest["runs"]} == {
            (s, m) for s in scenarios for m in ("performance", "accuracy")
        }
        for scen in scenarios:
            assert (raw / "resnet50" / scen / "performance" / "run_1" / "mlperf_log_detail.txt").is_file()
            assert (raw / "resnet50" / scen / "accuracy" / "mlperf_log_accuracy.json").is_file()
        node = json.loads((raw / "node.json").read_text())
        assert node["inventory_hostname"] == host and node["system_name"] == f"test_{host}"
        assert node["category"] == ("edge" if host == "node1" else "datacenter")
        assert node["facts"]["logical_cpus"] >= 1 and node["facts"]["architecture"]
    # the run dir holds the plan, one private data dir per stage, and the summary table
    assert (run_dir / "plan.json").is_file()
    assert {p.name for p in (run_dir / "ansible").iterdir()} >= {"provision", "deploy", "assets", "bench"}
    assert "node1  resnet50  MultiStream   ok" in proc.stdout
    # ...and ends merged, checked and reported (fleet/finish.py)
    systems = run_dir / "submission" / "open" / "MLPerfFleet" / "systems"
    assert sorted(p.stem for p in systems.glob("*.json")) == ["test_node1", "test_node2", "test_node3"]
    check = (run_dir / "check.txt").read_text()
    assert "needs-a-person" not in check, check  # group_vars/all.yml says what facts cannot
    if all(job.validity == "VALID" for job in state.jobs.values()):
        assert "VERDICT: PASS under smoke thresholds" in check, check
    assert (run_dir / "report" / "index.html").is_file() and (run_dir / "report" / "summary.csv").is_file()


def test_second_run_skips_deploy_and_assets(full_run, testnodes, fleet_cache, tmp_path):
    assert full_run[0].returncode == 0
    proc = fleet("run", "-i", str(testnodes.inventory), "-t", "resnet50", "--scenario", "Offline",
                 "--modes", "performance", "--runs-dir", str(tmp_path), "--run-id", "warm", *SMALL,
                 cache=fleet_cache)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("deploy", "assets"):
        events = [
            json.loads(p.read_text())
            for p in (tmp_path / "warm" / "ansible" / stage / "artifacts").rglob("job_events/*.json")
        ]
        changed = [
            e for e in events if e.get("event") == "runner_on_ok" and e["event_data"]["res"].get("changed")
        ]
        assert not changed, [(e["event_data"]["host"], e["event_data"]["task"]) for e in changed]


def test_retinanet_run_merges_into_a_tree_that_passes_fleet_check(full_run, testnodes, fleet_cache, tmp_path):
    """Issue 5 end to end: RetinaNet on a datacenter node (Server + Offline), merged and checked."""
    assert full_run[0].returncode == 0
    proc = fleet("run", "-i", str(testnodes.inventory), "-t", "retinanet", "--limit", "node2",
                 "--runs-dir", str(tmp_path), "--run-id", "retina", "--synthetic", "--plain",
                 cache=fleet_cache)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = RunState.load(tmp_path / "retina" / "run.json")
    assert {j.scenario for j in state.jobs.values()} == {"Server", "Offline"}
    assert all(j.accuracy is not None and j.accuracy >= 99.0 for j in state.jobs.values())
    tree = tmp_path / "retina" / "submission" / "open" / "MLPerfFleet"
    assert (tree / "results" / "test_node2" / "retinanet" / "Offline" / "accuracy" / "accuracy.txt").is_file()
    check = fleet("check", str(tmp_path / "retina"), "--profile", "smoke", cache=fleet_cache)
    if all(j.validity == "VALID" for j in state.jobs.values()):
        assert check.returncode == 0, check.stdout + check.stderr
        assert "VERDICT: PASS under smoke thresholds" in check.stdout
    else:  # a scheduling hiccup on two shared cores; the checker must then name the result
        assert check.returncode == 1 and "retinanet/Server" in check.stdout


def test_killed_node_fails_alone_and_resume_completes_it(full_run, testnodes, fleet_cache, tmp_path):
    assert full_run[0].returncode == 0
    env = fleet_cache
    args = [*FLEET, "run", "-i", str(testnodes.inventory), "-t", "resnet50", "--scenario", "Offline",
            "--runs-dir", str(tmp_path), "--run-id", "kill", *SMALL]  # fmt: skip
    run_json = tmp_path / "kill" / "run.json"
    pidfile = Path(testnodes.node("node2").workdir) / "runs" / "kill" / "specs" / "resnet50-Offline.pid"
    proc = testnodes.run_losing("node2", args, pidfile, env)  # node2's sshd dies mid-benchmark
    err = proc.stderr
    assert proc.returncode == 1, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("fleet: 1 of 3 jobs failed")
    state = RunState.load(run_json)
    node2 = state.jobs["node2/resnet50/Offline"]
    assert node2.status == "failed" and node2.stage == "bench" and "unreachable" in node2.error, node2
    for host in ("node1", "node3"):
        assert state.jobs[f"{host}/resnet50/Offline"].status == "ok"
    kept = {h: tree_digest(tmp_path / "kill" / "raw" / h) for h in ("node1", "node3")}

    again = fleet("run", "--runs-dir", str(tmp_path), "--resume", "kill", "--plain", cache=fleet_cache)
    assert again.returncode == 0, again.stderr[-3000:]
    state = RunState.load(run_json)
    assert state.attempts[-1]["jobs"] == ["node2/resnet50/Offline"]
    assert all(j.status == "ok" for j in state.jobs.values()), [
        (j.id, j.status, j.error) for j in state.jobs.values()
    ]
    assert state.jobs["node2/resnet50/Offline"].attempts == 2
    assert [state.jobs[f"{h}/resnet50/Offline"].attempts for h in ("node1", "node3")] == [1, 1]
    for host, digest in kept.items():
        assert tree_digest(tmp_path / "kill" / "raw" / host) == digest, f"{host} was rewritten by the resume"
    assert (
        tmp_path / "kill" / "raw" / "node2" / "resnet50" / "Offline" / "accuracy" / "accuracy.txt"
    ).is_file()


def test_fleet_nodes_reports_every_node(full_run, testnodes, fleet_cache):
    assert full_run[0].returncode == 0
    proc = fleet("nodes", "--inventory", str(testnodes.inventory), cache=fleet_cache)
    assert proc.returncode == 0, proc.stderr
    lines = {ln.split()[0]: ln for ln in proc.stdout.splitlines()[1:]}
    assert set(lines) == {"node1", "node2", "node3"}
    assert "edge" in lines["node1"] and "datacenter" in lines["node2"]
    assert all(" ok " in ln and "deployed" in ln for ln in lines.values())


def test_wrong_host_key_is_refused_by_ansible(testnodes, fleet_cache, tmp_path):
    bad_known = tmp_path / "known_hosts"
    first = testnodes.node("node3")
    # node3's address with node2's key: the node3 host key must not be accepted.
    other_key = (Path(testnodes.node("node2").dir) / "host_key.pub").read_text().split()
    bad_known.write_text(f"{first.ip} {other_key[0]} {other_key[1]}\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(testnodes.ssh_config.read_text().replace(str(testnodes.known_hosts), str(bad_known)))
    inv = tmp_path / "inv.ini"
    inv.write_text(testnodes.inventory.read_text().replace(str(testnodes.ssh_config), str(cfg)))
    proc = fleet("nodes", "--inventory", str(inv), "--limit", "node3", cache=fleet_cache)
    assert proc.returncode == 1
    assert "node3" in proc.stdout and "unreachable" in proc.stdout


@pytest.fixture(scope="session")
def artifact_store(tmp_path_factory) -> Path:
    """A controller artifact store holding a reduced synthetic ResNet50 (made here, no downloads)."""
    store = tmp_path_factory.mktemp("store")
    synth = [sys.executable, "-m", "fleet.harness", "synth", "--task", "resnet50"]
    opts = ["--variant", "small", "--samples", "32", "--out", str(store / "resnet50")]
    subprocess.run([*synth, *opts], check=True, capture_output=True)
    return store


def rot_one_member(tar: Path) -> None:
    """Flip one byte of one dataset file inside the tar, leaving its SHA256SUMS as it was."""
    with tarfile.open(tar) as src:
        members = [(m, src.extractfile(m).read() if m.isfile() else None) for m in src.getmembers()]
    with tarfile.open(tar, "w") as out:
        rotted = False
        for member, data in members:
            if (
                data
                and not rotted
                and member.name.startswith("imagenet/")
                and member.name != "imagenet/val_map.txt"
            ):
                data, rotted = bytes([data[0] ^ 1]) + data[1:], True
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    assert rotted


def test_artifact_store_is_staged_and_checked(full_run, testnodes, fleet_cache, artifact_store, tmp_path):
    assert full_run[0].returncode == 0
    common = [
        "-i",
        str(testnodes.inventory),
        "-t",
        "resnet50",
        "--scenario",
        "Offline",
        "--modes",
        "performance",
    ]
    common += ["--artifacts", str(artifact_store), "--runs-dir", str(tmp_path), "--plain"]
    proc = fleet("run", *common, "--limit", "node3", "--run-id", "store", cache=fleet_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = RunState.load(tmp_path / "store" / "run.json").jobs["node3/resnet50/Offline"]
    assert job.status == "ok" and job.validity == "VALID"
    staged = list((Path(testnodes.node("node3").workdir) / "assets").glob("resnet50-*/.fleet-complete"))
    assert len(staged) == 1

    # The controller's cached tar rots: node2 (not staged from it yet) must refuse it.
    rot_one_member(next((Path(fleet_cache["FLEET_CACHE_DIR"]) / "artifacts").glob("resnet50-*.tar")))
    bad = fleet("run", *common, "--limit", "node2", "--run-id", "rotten", cache=fleet_cache)
    assert bad.returncode == 1
    job = RunState.load(tmp_path / "rotten" / "run.json").jobs["node2/resnet50/Offline"]
    assert job.status == "failed" and job.stage == "assets" and "did NOT match" in job.error, job.error


def test_execute_runs_a_list_of_specs_per_node_in_order(
    full_run, testnodes, fleet_cache, tmp_path, monkeypatch
):
    """The Python API other verbs reuse: a node gets several RunSpecs, run one after another."""
    assert full_run[0].returncode == 0
    for key in ("FLEET_CACHE_DIR", "FLEET_NODE_WHEEL"):
        monkeypatch.setenv(key, fleet_cache[key])
    inventory = load_inventory(testnodes.inventory).subset(["node1"])
    small = {"synthetic": True, "synthetic_variant": "small", "synthetic_samples": 32}
    settings = validate(RunSettings(inventory=str(testnodes.inventory), tasks=["resnet50"], **small))
    specs = {
        "node1": [
            RunSpec(task="resnet50", scenarios=["SingleStream"], modes=["performance"], synthetic=True),
            RunSpec(task="resnet50", scenarios=["Offline"], modes=["performance"], synthetic=True),
        ]
    }
    state = execute(tmp_path / "api", inventory, specs, settings)
    jobs = list(state.jobs.values())
    assert [j.id for j in jobs] == ["node1/resnet50/SingleStream", "node1/resnet50/Offline"]
    assert all(j.status == "ok" for j in jobs), [(j.id, j.error) for j in jobs]
    assert jobs[0].finished <= jobs[1].started
    assert json.loads((tmp_path / "api" / "run.json").read_text())["jobs"].keys() == state.jobs.keys()


def test_failing_assets_stage_says_the_item_and_the_nodes_own_error(full_run, testnodes, fleet_cache,
                                                                    tmp_path):
    """Issue 18 item 2: the node's last error line, not Ansible's 'One or more items failed'."""
    assert full_run[0].returncode == 0
    proc = fleet("run", "-i", str(testnodes.inventory), "-t", "retinanet", "--limit", "node2",
                 "--scenario", "Offline", "--runs-dir", str(tmp_path), "--run-id", "badassets",
                 "--synthetic", "--synthetic-samples", "2", "--plain", cache=fleet_cache)  # fmt: skip
    assert proc.returncode == 1
    said = "item retinanet: fleet.harness: error: --samples must be at least 4 for retinanet"
    assert f"node2: FAILED at assets: failed: {said}" in proc.stderr, proc.stderr[-3000:]
    assert "One or more items failed" not in proc.stderr + proc.stdout
    job = RunState.load(tmp_path / "badassets" / "run.json").jobs["node2/retinanet/Offline"]
    assert job.status == "failed" and job.stage == "assets" and said in job.error, job.error
    assert said in proc.stdout  # the results table's note


def _wheelhouse_without(cache: Path, into: Path, dropped: str) -> None:
    """A copy of the session's dependency wheelhouse whose tar lacks the wheels named `dropped`-*."""
    src = cache / "wheelhouse"
    (into / "wheelhouse").mkdir(parents=True)
    for tar in src.glob("*.tar"):
        shutil.copytree(src / tar.stem, into / "wheelhouse" / tar.stem)
        with tarfile.open(tar) as old, tarfile.open(into / "wheelhouse" / tar.name, "w") as new:
            for member in old.getmembers():
                if not Path(member.name).name.startswith(f"{dropped}-"):
                    new.addfile(member, old.extractfile(member) if member.isfile() else None)


def test_failing_deploy_says_the_nodes_own_error(full_run, testnodes, fleet_cache, tmp_path):
    """A wheelhouse that lacks a dependency: pip's own last line reaches the user."""
    assert full_run[0].returncode == 0
    cache = tmp_path / "cache"
    _wheelhouse_without(Path(fleet_cache["FLEET_CACHE_DIR"]), cache, "pycocotools")
    node3 = testnodes.node("node3")
    inv = tmp_path / "inv.ini"  # a fresh work dir on node3, so deploy installs again
    inv.write_text(testnodes.inventory.read_text().replace(
        f"fleet_workdir={node3.workdir} ", f"fleet_workdir={node3.workdir}-fresh "))
    proc = fleet("run", "-i", str(inv), "-t", "resnet50", "--limit", "node3", "--scenario", "Offline",
                 "--modes", "performance", "--runs-dir", str(tmp_path), "--run-id", "baddeploy", *SMALL,
                 cache={**fleet_cache, "FLEET_CACHE_DIR": str(cache)})  # fmt: skip
    assert proc.returncode == 1
    said = "ERROR: No matching distribution found for pycocotools"  # resnet50's vision extra
    assert "node3: FAILED at deploy: failed: " + said in proc.stderr, proc.stderr[-3000:]
    job = RunState.load(tmp_path / "baddeploy" / "run.json").jobs["node3/resnet50/Offline"]
    assert job.status == "failed" and job.stage == "deploy" and said in job.error, job.error


def test_progress_names_the_mode_and_an_infeasible_server_is_said_not_run(full_run, testnodes, fleet_cache,
                                                                           tmp_path):
    """Items 3 and 4: per-node `task scenario mode elapsed` lines while jobs run; the full-size
    model (~60 ms a sample on two cores) against ResNet50's 15 ms Server bound is infeasible."""
    assert full_run[0].returncode == 0
    proc = fleet("run", "-i", str(testnodes.inventory), "-t", "resnet50", "--limit", "node2",
                 "--scenario", "Server", "--scenario", "Offline", "--modes", "performance,accuracy",
                 "--runs-dir", str(tmp_path), "--run-id", "slow", "--synthetic",
                 "--synthetic-variant", "full", "--synthetic-samples", "32", "--plain",
                 cache={**fleet_cache, "FLEET_STATUS_EVERY_S": "1"})  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    state = RunState.load(tmp_path / "slow" / "run.json")
    server, offline = state.jobs["node2/resnet50/Server"], state.jobs["node2/resnet50/Offline"]
    assert offline.status == "ok" and offline.validity == "VALID", offline
    assert server.status == "infeasible" and server.stage == "bench", server
    assert "over the 15 ms Server latency bound" in server.error and "one sample takes" in server.error
    raw = tmp_path / "slow" / "raw" / "node2"
    outcomes = {r["mode"]: r["outcome"] for r in json.loads((raw / "manifest.json").read_text())["runs"]
                if r["scenario"] == "Server"}  # fmt: skip
    assert outcomes == {"performance": "infeasible", "accuracy": "infeasible"}
    assert not (raw / "resnet50" / "Server" / "performance").exists()
    line = next(ln for ln in proc.stderr.splitlines() if "node2/resnet50/Server INFEASIBLE" in ln)
    assert re.search(r"one sample takes [\d.]+ ms .* over the 15 ms Server latency bound", line), line
    assert "cannot be VALID on its node" in proc.stderr.strip().splitlines()[-1]
    status = re.findall(r"\] (node2 resnet50 \w+ \w+) \d+(?:s|m\d\ds)$", proc.stderr, re.MULTILINE)
    assert "node2 resnet50 Offline performance" in status, proc.stderr[-3000:]


# What the official checker says of a smoke run and of nothing else: LoadGen's reduced duration
# and query counts, and the performance sample count of a 4-case synthetic set (43 in v3.1).
SMOKE_REDUCTIONS = re.compile(
    r"min_duration|min_query_count|min query count|performance_sample_count|Test duration|"
    r"too short|early.stopping|result_validity|INVALID|is not valid|Required minimum",
    re.IGNORECASE,
)


def assert_official_checker_reports_only_smoke_reductions(official: Path, tree: Path,
                                                          results: tuple[str, ...]) -> None:
    """The official v3.1 checker ran to its summary over `tree` (an org's directory), saw each
    of `results`, and its only errors are the smoke profile's reduced rules."""
    from fleet.submission.official import run_official

    verdict = run_official(official, tree.parent.parent, tree.name)
    print(verdict.render())
    assert verdict.summary_ok is not None, verdict.render()  # it ran to its SUMMARY
    reduced = [e for e in verdict.errors if SMOKE_REDUCTIONS.search(e)]
    # "<run dir> has issues" follows the lines that name them; it must be a reduced run's.
    other = [e for e in verdict.errors if e not in reduced and not (
        e.endswith(" has issues") and any(r.startswith(e.split()[0] + "/") for r in reduced))]
    assert reduced and not other, verdict.render()
    seen = set(verdict.results) | set(verdict.no_results)
    for result in results:
        assert any(result in key for key in seen), verdict.render()


def run_on_edge_and_datacenter(task: str, run_id: str, testnodes, fleet_cache, runs: Path,
                               jobs: set[tuple[str, str]], accuracy: float,
                               said: tuple[str, ...] = (),
                               more: tuple[str, ...] = ()) -> tuple[RunState, Path]:
    """`fleet run` of `task` on node1 (edge) and node2 (datacenter) on synthetic assets, with
    `more` arguments: every job in `jobs` ok, VALID and scoring `accuracy` on the teacher's
    labels, each of `said` a line of its stderr, and `fleet check` passing. Returns the run
    state and the merged tree's organization directory."""
    proc = fleet("run", "-i", str(testnodes.inventory), "-t", task, "--limit", "node1,node2",
                 "--runs-dir", str(runs), "--run-id", run_id, "--synthetic",
                 "--synthetic-variant", "small", "--plain", *more, cache=fleet_cache)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for line in said:
        assert line in proc.stderr.splitlines(), proc.stderr[-3000:]
    state = RunState.load(runs / run_id / "run.json")
    assert {(j.host, j.scenario) for j in state.jobs.values()} == jobs
    for job in state.jobs.values():
        assert job.status == "ok" and job.validity == "VALID", (job.id, job.error)
        assert job.accuracy == pytest.approx(accuracy), job.id
    check = fleet("check", str(runs / run_id), "--profile", "smoke", cache=fleet_cache)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "VERDICT: PASS under smoke thresholds" in check.stdout
    return state, runs / run_id / "submission" / "open" / "MLPerfFleet"


def test_unet3d_runs_on_edge_and_datacenter_and_the_official_checker_accepts_the_tree(
        full_run, testnodes, fleet_cache, official_inference, tmp_path):
    """Issue 12 end to end: 3d-unet-99 Offline on the edge node and a datacenter node, merged,
    `fleet check` and the official v3.1 checker from ../shared/external/. Offline only: the
    edge node's SingleStream needs LoadGen's 64 queries for early stopping at ~1.6 s a case on
    its half core, 140 s of the suite's budget, and adds nothing the harness test of both
    scenarios and resnet50's SingleStream on the lab do not check."""
    assert full_run[0].returncode == 0
    _, tree = run_on_edge_and_datacenter(  # accuracy: mean DICE on the teacher's labels
        "3d-unet-99", "unet", testnodes, fleet_cache, tmp_path,
        {("node1", "Offline"), ("node2", "Offline")}, accuracy=1.0, more=("--scenario", "Offline"))
    acc = tree / "results" / "test_node1" / "3d-unet-99" / "Offline" / "accuracy" / "accuracy.txt"
    assert acc.read_text().startswith("Accuracy: mean = 1.00000, kidney = 1.0000, tumor = 1.0000")
    assert_official_checker_reports_only_smoke_reductions(official_inference, tree, (
        "test_node1/3d-unet-99/Offline", "test_node2/3d-unet-99/Offline"))


def test_rnnt_runs_on_the_pytorch_backend_and_the_official_checker_accepts_the_tree(
        full_run, testnodes, fleet_cache, official_inference, tmp_path):
    """Issue 11 end to end: rnnt on its reference backend (pytorch, deployed from the
    controller's wheelhouse to nodes with no route out) on the edge node (SingleStream,
    Offline) and a datacenter node (Server, Offline), merged, `fleet check` and the official
    v3.1 checker."""
    assert full_run[0].returncode == 0
    state, tree = run_on_edge_and_datacenter(  # accuracy: (1 - WER) % on the teacher's transcripts
        "rnnt", "rnnt", testnodes, fleet_cache, tmp_path,
        {("node1", "SingleStream"), ("node1", "Offline"), ("node2", "Server"), ("node2", "Offline")},
        accuracy=100.0)
    print("stages", state.attempts[-1].get("stages"))
    acc = tree / "results" / "test_node2" / "rnnt" / "Server" / "accuracy" / "accuracy.txt"
    assert acc.read_text().startswith("Word Error Rate: 0.0%, accuracy=100.0%")
    systems = json.loads((tree / "systems" / "test_node1.json").read_text())
    assert systems["framework"].startswith("PyTorch 2.13.0"), systems["framework"]
    assert_official_checker_reports_only_smoke_reductions(official_inference, tree, (
        "test_node1/rnnt/SingleStream", "test_node1/rnnt/Offline", "test_node2/rnnt/Server",
        "test_node2/rnnt/Offline"))


def test_dlrm_runs_on_the_datacenter_node_and_the_official_checker_accepts_the_tree(
        full_run, testnodes, fleet_cache, official_inference, tmp_path):
    """Issue 24 end to end: dlrm-v2-99 on its reference backend (pytorch, with scikit-learn for
    the AUC from the wheelhouse): the datacenter node runs Server and Offline, the edge node is
    skipped with its line (datacenter only in v3.1), merged, `fleet check` and the official v3.1
    checker."""
    assert full_run[0].returncode == 0
    state, tree = run_on_edge_and_datacenter(  # accuracy: AUC % on the teacher's labels
        "dlrm-v2-99", "dlrm", testnodes, fleet_cache, tmp_path,
        {("node2", "Server"), ("node2", "Offline")}, accuracy=100.0,
        said=("fleet: dlrm-v2-99 skips edge host node1: in MLPerf Inference v3.1 it is a benchmark for "
              "datacenter systems only",))
    assert set(state.nodes) == {"node2"}
    print("stages", state.attempts[-1].get("stages"))
    acc = tree / "results" / "test_node2" / "dlrm-v2-99" / "Offline" / "accuracy" / "accuracy.txt"
    assert re.search(r"^AUC=100\.000%, accuracy=100\.000%, good=\d+, total=\d+, queries=64$", acc.read_text(),
                     re.MULTILINE)
    systems = json.loads((tree / "systems" / "test_node2.json").read_text())
    assert systems["framework"].startswith("PyTorch 2.13.0"), systems["framework"]
    assert_official_checker_reports_only_smoke_reductions(official_inference, tree, (
        "test_node2/dlrm-v2-99/Server", "test_node2/dlrm-v2-99/Offline"))


def test_gptj_runs_on_edge_and_datacenter_and_the_official_checker_accepts_the_tree(
        full_run, testnodes, fleet_cache, official_inference, tmp_path):
    """Issue 25 end to end: gptj-99 on its reference backend (pytorch, with transformers and
    rouge_score from the wheelhouse) on the edge node and a datacenter node, generated with the
    rules' beam search, merged, `fleet check` and the official v3.1 checker (which needs no
    compliance directory for gptj). Offline only, on the `small` set (short prompts): at the
    tiny model's ~1 QPS on two shared CPUs, a smoke Server run (459 queries for early stopping)
    is cut to 120 s and INVALID by design, and SingleStream's 64 queries add half a minute; the
    plan test covers the other scenarios."""
    assert full_run[0].returncode == 0
    state, tree = run_on_edge_and_datacenter(  # accuracy: ROUGE-1 on the teacher's summaries
        "gptj-99", "gptj", testnodes, fleet_cache, tmp_path, {("node1", "Offline"), ("node2", "Offline")},
        accuracy=100.0, more=("--scenario", "Offline", "--synthetic-samples", "4"))
    print("stages", state.attempts[-1].get("stages"))
    acc = tree / "results" / "test_node1" / "gptj-99" / "Offline" / "accuracy" / "accuracy.txt"
    text = acc.read_text()
    assert re.search(r"^\{'rouge1': 100\.0, 'rouge2': 100\.0, 'rougeL': 100\.0, 'rougeLsum': 100\.0, "
                     r"'gen_len': \d+, 'gen_num': 4\}$", text, re.MULTILINE), text
    assert "synthetic set: gen_len is 1.0000 x the references'" in text
    assert not (tree / "compliance").exists() or not any((tree / "compliance").rglob("gptj-99"))
    systems = json.loads((tree / "systems" / "test_node1.json").read_text())
    assert systems["framework"].startswith("PyTorch 2.13.0"), systems["framework"]
    assert_official_checker_reports_only_smoke_reductions(official_inference, tree, (
        "test_node1/gptj-99/Offline", "test_node2/gptj-99/Offline"))


def test_a_host_without_the_memory_for_gptj_is_refused_before_anything_is_deployed(
        testnodes, fleet_cache, asset_shelf, tmp_path):
    """A GPT-J checkpoint whose config says it needs more than node2's memory: node2's jobs end
    INFEASIBLE right after provisioning, one line naming the host, the need and what it has, and
    nothing is deployed, staged or run there."""
    assets = asset_shelf.get("gptj-99", 4, "small")
    store = tmp_path / "store" / "gptj-99"
    shutil.copytree(assets.root / "checkpoint-final", store / "checkpoint-final")
    shutil.copytree(assets.dataset, store / "cnndm")
    config = json.loads((store / "checkpoint-final" / "config.json").read_text())
    config.update(n_embd=4096, n_layer=2800, n_positions=2048)  # ~3 TB at fp32: no test host has it
    (store / "checkpoint-final" / "config.json").write_text(json.dumps(config))
    proc = fleet("run", "-i", str(testnodes.inventory), "-t", "gptj-99", "--limit", "node2", "--plain",
                 "--artifacts", str(tmp_path / "store"), "--runs-dir", str(tmp_path / "runs"),
                 "--run-id", "big", cache=fleet_cache)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    state = RunState.load(tmp_path / "runs" / "big" / "run.json")
    for job in state.jobs.values():
        assert job.status == "infeasible" and job.stage == "plan", job
        assert re.fullmatch(r"node2 cannot hold gptj-99: GPT-J at fp32 needs \d+\.\d GB \(\d+\.\d GB of "
                            r"weights, \d+\.\d GB for a 4-beam, 2048-token key/value cache\), and node2 has "
                            r"\d+\.\d GB of memory; run it on a host with more, or at bf16 .*",
                            job.error), job.error
    assert state.nodes["node2"].stage == "provision"  # not deployed, no assets staged, nothing run
    assert "cannot be VALID on its node" in proc.stderr.strip().splitlines()[-1]
