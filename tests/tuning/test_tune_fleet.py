"""`fleet tune` then `fleet run --tuned` on real sshd test nodes (node1 edge: one CPU at 50 %).

Real ansible-runner, wheelhouse deploy and harness, small synthetic ResNet50, a smoke-sized
budget. Only node1 (edge) and node2 (datacenter) take part, to leave the shared cores to
them, and without the test inventory's `fleet_threads=1` pin, so each node's own CPU limit
shapes its search. Speeds are never asserted: what must hold on any machine is asserted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checks import assert_confirmed
from loadcheck import bare_p99_ms

from fleet.harness.rules import v3_1 as rules
from fleet.runstate import RunState

pytestmark = pytest.mark.integration

FLEET = [sys.executable, "-m", "fleet.cli"]
SERVER_BOUND_MS = rules.MODELS["resnet"].server_latency_ns / 1e6
SMALL = ["--synthetic", "--synthetic-variant", "small", "--synthetic-samples", "32", "--plain"]


def fleet(*args: str, cache: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEET_CACHE_DIR": str(cache)}
    return subprocess.run([*FLEET, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


@pytest.fixture(scope="module")
def fleet_tuned(testnodes, tmp_path_factory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("tune-cache")
    runs = tmp_path_factory.mktemp("tune-runs")
    inventory = tmp_path_factory.mktemp("tune-inventory") / "inventory.ini"
    inventory.write_text(testnodes.inventory.read_text().replace(" fleet_threads=1", ""))
    proc = fleet("tune", "-i", str(inventory), "--limit", "node1,node2", "-t", "resnet50",
                 "--scenario", "Offline", "--scenario", "Server", "--budget", "90s", "--runs-dir", str(runs),
                 "--run-id", "tune", *SMALL, cache=cache)  # fmt: skip
    return {"proc": proc, "runs": runs, "cache": cache, "inventory": inventory}


def _stored(runs: Path, system: str) -> dict[str, Any]:
    return json.loads((runs / "tuning" / system / "resnet50.json").read_text())


def _server_log(runs: Path) -> str:
    path = runs / "tune" / "raw" / "node2" / "resnet50" / "Server" / "tuning" / "tuning.log"
    return path.read_text() if path.is_file() else "(no Server tuning log)"


def test_tune_runs_on_every_node_and_stores_per_system(fleet_tuned) -> None:
    proc, runs = fleet_tuned["proc"], fleet_tuned["runs"]
    state = RunState.load(runs / "tune" / "run.json")
    jobs = {j.id: j for j in state.jobs.values()}
    assert set(jobs) == {"node1/resnet50/Offline", "node2/resnet50/Server", "node2/resnet50/Offline"}
    for job_id in ("node1/resnet50/Offline", "node2/resnet50/Offline"):
        assert jobs[job_id].status == "ok", (jobs[job_id].error, proc.stderr[-3000:])
    assert all(j.modes == ["tune"] for j in jobs.values())
    edge, dc = _stored(runs, "test_node1"), _stored(runs, "test_node2")
    server_ok = jobs["node2/resnet50/Server"].status == "ok"
    # A scenario is stored exactly when its tuning succeeded; the exit status says whether all did.
    assert set(edge["scenarios"]) == {"Offline"}
    assert set(dc["scenarios"]) == ({"Offline", "Server"} if server_ok else {"Offline"})
    assert proc.returncode == (0 if server_ok else 1), proc.stderr[-3000:]
    if not server_ok:
        assert "node2 resnet50 Server: tuning failed" in proc.stderr
    # Tied to each node's host facts: the edge node may use one CPU, the datacenter node two.
    assert edge["facts"]["usable_cpus"] == 1 and dc["facts"]["usable_cpus"] == 2
    assert edge["facts_digest"] != dc["facts_digest"]
    # Every trial is kept, with its logs collected from the node.
    for host, stored in (("node1", edge), ("node2", dc)):
        for rec in stored["scenarios"].values():
            assert rec["trial_count"] == len(rec["trials"]) >= 2
            for t in rec["trials"]:
                if t["ok"]:
                    assert (runs / "tune" / "raw" / host / t["dir"] / "mlperf_log_detail.txt").is_file()
    assert "## Tuning" in (runs / "tune" / "tuning.md").read_text()


def test_edge_and_datacenter_get_different_offline_settings(fleet_tuned) -> None:
    runs = fleet_tuned["runs"]
    edge = _stored(runs, "test_node1")["scenarios"]["Offline"]
    dc = _stored(runs, "test_node2")["scenarios"]["Offline"]
    # The capped edge node is searched and tuned within its one CPU ...
    assert edge["space"]["fixed"]["threads"] == 1 and "threads" not in edge["space"]["values"]
    assert {t["settings"]["threads"] for t in edge["trials"]} == {1} and edge["tuning"]["threads"] == 1
    # ... the datacenter node measured two threads as well and chose from what it measured.
    assert dc["space"]["values"]["threads"] == [1, 2]
    assert {t["settings"]["threads"] for t in dc["trials"] if t["kind"] == "knob"} == {1, 2}
    chosen = next(t for t in dc["trials"] if t["n"] == dc["knob_search"]["best_trial"])
    assert chosen["settings"] == dc["settings"] and dc["tuning"]["threads"] == chosen["settings"]["threads"]


def test_server_search_ends_valid_below_an_invalid_step(fleet_tuned, small_assets) -> None:
    scenarios = _stored(fleet_tuned["runs"], "test_node2")["scenarios"]
    if "Server" not in scenarios:  # no skip for a busy machine: a regression would hide behind it
        p99 = bare_p99_ms(small_assets / "resnet50_v1.onnx")
        pytest.fail(f"no VALID Server target was found (a bare batch-1 loop of the small model has p99 "
                    f"{p99:.1f} ms against the {SERVER_BOUND_MS:g} ms bound)\n"
                    f"{_server_log(fleet_tuned['runs'])}")
    rec = scenarios["Server"]
    search = rec["server_search"]
    best = search["best"]
    assert best and best["valid"] and best["p99_latency_ms"] <= search["latency_bound_ms"]
    server = [t for t in rec["trials"] if t["kind"] == "server"]
    above = [t for t in server if t["conf"]["target_qps"] > best["target_qps"]]
    assert above, "the search never tried a target above the best VALID one"
    step = min(above, key=lambda t: t["conf"]["target_qps"])
    assert step["validity"] != "VALID" or step["p99_ms"] > search["latency_bound_ms"]
    assert search["ceiling"]["target_qps"] == pytest.approx(step["conf"]["target_qps"])
    assert_confirmed(rec, best["target_qps"], 0.05)


def _conf_value(path: Path, key: str) -> float:
    return float(re.search(rf"^resnet50\.\w+\.{key} = (\S+)$", path.read_text(), re.M).group(1))


def test_run_tuned_uses_the_stored_values(fleet_tuned) -> None:
    runs, cache, inventory = fleet_tuned["runs"], fleet_tuned["cache"], fleet_tuned["inventory"]
    proc = fleet("run", "-i", str(inventory), "--limit", "node2", "-t", "resnet50", "--tuned",
                 "--modes", "performance", "--runs-dir", str(runs), "--run-id", "tuned", *SMALL,
                 cache=cache)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]  # a job may end INVALID; values are the point
    assert "host facts changed" not in proc.stderr
    stored = _stored(runs, "test_node2")["scenarios"]
    raw = runs / "tuned" / "raw" / "node2" / "resnet50"
    offline_conf = raw / "Offline" / "performance" / "run_1" / "user.conf"
    offline = stored["Offline"]["tuning"]
    manifest = json.loads((runs / "tuned" / "raw" / "node2" / "manifest.json").read_text())
    runs_by_scenario = {r["scenario"]: r for r in manifest["runs"]}

    def first_target(scenario: str, conf: Path) -> float:
        """The stored value goes into the first try; an INVALID one is retried (its attempts say)."""
        attempts = runs_by_scenario[scenario]["attempts"]
        return attempts[0]["target_qps"] if attempts else _conf_value(conf, "target_qps")

    assert first_target("Offline", offline_conf) == pytest.approx(offline["offline_expected_qps"])
    assert runs_by_scenario["Offline"]["threads"] == offline["threads"]
    assert runs_by_scenario["Offline"]["batch_size"] == offline["batch_size"]
    applied = json.loads((runs / "tuned" / "tuning.json").read_text())["hosts"]["node2"]["resnet50"]
    report = (runs / "tuned" / "report" / "summary.md").read_text()
    assert "## Tuning" in report and "### Trials: test_node2 resnet50 Offline" in report
    server_conf = raw / "Server" / "performance" / "run_1" / "user.conf"
    if "Server" in stored:
        server = stored["Server"]["tuning"]
        assert first_target("Server", server_conf) == pytest.approx(server["server_target_qps"])
        assert runs_by_scenario["Server"]["batch_size"] == server["server_max_batch"]
        assert set(applied["scenarios"]) == {"Offline", "Server"} and "no stored" not in proc.stderr
    else:  # Server tuning failed: that scenario falls back to the harness's defaults, with a warning
        assert "node2: no stored resnet50 Server tuning" in proc.stderr
        assert set(applied["scenarios"]) == {"Offline"} and server_conf.is_file()
