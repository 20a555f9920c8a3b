"""Controller side of tuning without nodes: filing, applying, digest warnings, report tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet import plan, tuning_store
from fleet.commands.tune import parse_budget, tune_specs
from fleet.config import RunSettings
from fleet.errors import ConfigError
from fleet.harness.tuning.digest import digest_fields, facts_digest
from fleet.harness.tuning.options import budget_shares
from fleet.inventory import load_inventory
from fleet.runstate import FAILED, OK, JobState, NodeState, RunState
from fleet.tuning_report import tuning_html, tuning_markdown

HOST = {"cpu_model": "Xeon", "logical_cpus": 2, "usable_cpus": 2, "memory_bytes": 24 << 30,
        "accelerators": []}
VERSIONS = {"python": "3.11.2", "fleet": "0.1.0", "onnxruntime": "1.17"}
DIGEST = facts_digest(HOST, VERSIONS)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("inventory") / "lab.ini"
    path.write_text("[edge]\nnode1 ansible_connection=local fleet_system_name=box_edge\n"
                    "[datacenter]\nnode2 ansible_connection=local fleet_threads=2 "
                    "fleet_tuning='{\"server_target_qps\": 12.5, \"graph_optimization\": \"all\"}'\n")
    return load_inventory(path)


def _trial(n: int, kind: str, result: float, validity: str = "VALID") -> dict[str, Any]:
    return {"n": n, "kind": kind, "scenario": "Offline", "settings": {"threads": 2, "batch_size": 8},
            "conf": {"target_qps": 100.0}, "ok": True, "validity": validity, "result": result,
            "unit": "Samples/s", "p99_ms": 12.5, "note": "", "error": None, "invalid_reason": None}


def _record(scenario: str, tuning: dict[str, Any], status: str = "ok") -> dict[str, Any]:
    return {"scenario": scenario, "status": status, "error": None if status == "ok" else "no VALID target",
            "settings": {"threads": 2, "batch_size": 8}, "tuning": tuning if status == "ok" else None,
            "trials": [_trial(1, "knob", 90.0), _trial(2, "target", 95.0)], "trial_count": 2, "wall_s": 3.0,
            "knob_search": {"stopped_by": "converged"}, "profile": "smoke", "safety_margin": 0.05,
            "server_search": None}


def _raw(run_dir: Path, host: str, records: dict[str, dict[str, Any]], digest: str = DIGEST) -> None:
    raw = run_dir / "raw" / host
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "tuning.json").write_text(json.dumps({
        "tuning_version": 1, "facts_digest": digest, "facts": digest_fields(HOST, VERSIONS),
        "tasks": {"resnet50": records}}))


def _state(run_id: str, jobs: list[tuple[str, str, str]]) -> RunState:
    return RunState(run_id=run_id, settings={}, specs={},
                    jobs={f"{h}/resnet50/{s}": JobState(f"{h}/resnet50/{s}", h, "resnet50", s, ["tune"],
                                                        status=st) for h, s, st in jobs},
                    nodes={h: NodeState(h, "edge", h) for h in dict.fromkeys(h for h, _, _ in jobs)})


OFFLINE = {"threads": 2, "batch_size": 8, "graph_optimization": "all", "execution_provider": "cpu",
           "offline_expected_qps": 190.0}
SERVER = {"threads": 2, "graph_optimization": "all", "execution_provider": "cpu", "server_max_batch": 4,
          "server_target_qps": 80.0}


def test_server_gets_the_larger_share_of_a_node_budget() -> None:
    assert budget_shares(90, ["Server", "Offline"]) == {"Server": 60, "Offline": 30}
    assert budget_shares(30, ["SingleStream"]) == {"SingleStream": 30}


def test_parse_budget() -> None:
    assert parse_budget("15m") == 900 and parse_budget("90s") == 90 and parse_budget("1h30m") == 5400
    assert parse_budget("42") == 42
    for bad in ("0", "15x", "m", "-3s"):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_store_files_good_scenarios_and_names_failed_ones(tmp_path: Path, inventory) -> None:
    run_dir, root = tmp_path / "tune-1", tmp_path / "tuning"
    _raw(run_dir, "node1", {"Offline": _record("Offline", OFFLINE)})
    _raw(run_dir, "node2", {"Offline": _record("Offline", OFFLINE),
                            "Server": _record("Server", {}, "failed")})
    state = _state("tune-1", [("node1", "Offline", OK), ("node2", "Offline", OK),
                              ("node2", "Server", FAILED)])
    stored = tuning_store.store_run(run_dir, state, inventory, root)
    assert sorted(p.relative_to(root).as_posix() for p in stored.paths) == [
        "box_edge/resnet50.json", "node2_cpu/resnet50.json"]
    assert stored.failed == [("node2", "resnet50", "Server", "no VALID target")]
    rec = tuning_store.load(root, "node2_cpu", "resnet50")
    assert rec["facts_digest"] == DIGEST and set(rec["scenarios"]) == {"Offline"}

    # Tuning Server later keeps Offline while the machine is the same ...
    _raw(run_dir, "node2", {"Server": _record("Server", SERVER)})
    tuning_store.store_run(run_dir, _state("tune-2", [("node2", "Server", OK)]), inventory, root)
    assert set(tuning_store.load(root, "node2_cpu", "resnet50")["scenarios"]) == {"Offline", "Server"}
    # ... and forgets it once the machine changed.
    _raw(run_dir, "node2", {"Server": _record("Server", SERVER)}, digest="f" * 16)
    tuning_store.store_run(run_dir, _state("tune-3", [("node2", "Server", OK)]), inventory, root)
    assert set(tuning_store.load(root, "node2_cpu", "resnet50")["scenarios"]) == {"Server"}


def test_apply_splits_scenarios_keeps_pins_and_warns_where_nothing_is_stored(tmp_path, inventory) -> None:
    root = tmp_path / "tuning"
    run_dir = tmp_path / "tune-1"
    _raw(run_dir, "node2", {"Offline": _record("Offline", OFFLINE), "Server": _record("Server", SERVER)})
    tuning_store.store_run(run_dir, _state("tune-1", [("node2", "Offline", OK), ("node2", "Server", OK)]),
                           inventory, root)
    settings = RunSettings(inventory=str(inventory.path), tasks=["resnet50"])
    specs = plan.build(inventory, settings, "run-1")
    warnings: list[str] = []
    tuned, applied = tuning_store.apply_stored(specs, inventory, root, "smoke", warnings.append)
    assert tuned["node1"] == specs["node1"]  # nothing stored: the plan as it was
    assert any("node1: no stored tuning for resnet50" in w for w in warnings)
    by_scenario = {s.scenarios[0]: s for s in tuned["node2"]}
    assert list(by_scenario) == specs["node2"][0].scenarios
    off, srv = by_scenario["Offline"].tuning, by_scenario["Server"].tuning
    assert (off.batch_size, off.offline_expected_qps, off.tuned_for) == (8, 190.0, DIGEST)
    assert (srv.server_max_batch, srv.server_target_qps) == (4, 80.0)
    assert "threads" not in off.tuned_fields and off.threads == 2  # fleet_threads=2 is a pin
    assert "graph_optimization" not in srv.tuned_fields  # so is a knob in fleet_tuning ...
    assert "server_target_qps" in srv.tuned_fields  # ... while its LoadGen target is replaced
    assert plan.jobs_of(tuned) == plan.jobs_of(specs)  # same jobs, now with their own tuning
    assert set(applied.records["node2"]["resnet50"]["scenarios"]) == {"Offline", "Server"}


def test_after_tuned_run_keeps_what_was_applied_and_warns_on_changed_facts(tmp_path: Path) -> None:
    applied = tuning_store.Applied({"node2": {"resnet50": {
        "system_name": "node2_cpu", "facts_digest": DIGEST, "facts": digest_fields(HOST, VERSIONS),
        "run_id": "tune-1", "scenarios": {"Offline": _record("Offline", OFFLINE)}}}})
    run_dir = tmp_path / "run-1"
    raw = run_dir / "raw" / "node2"
    raw.mkdir(parents=True)
    (raw / "manifest.json").write_text(json.dumps({"host": {**HOST, "usable_cpus": 1}, "versions": VERSIONS}))
    warnings: list[str] = []
    tuning_store.after_tuned_run(run_dir, applied, warnings.append)
    assert warnings == ["node2: host facts changed since resnet50 was tuned (usable_cpus: 2 -> 1); "
                        "the node ran with defaults. Rerun fleet tune."]
    (raw / "manifest.json").write_text(json.dumps({"host": HOST, "versions": VERSIONS}))
    warnings.clear()
    tuning_store.after_tuned_run(run_dir, applied, warnings.append)
    assert warnings == []
    md = tuning_markdown(run_dir)
    assert "## Tuning" in md and "offline_expected_qps=190" in md
    assert "### Trials: node2_cpu resnet50 Offline" in md and "| 2 | target | Offline |" in md
    page = tuning_html(run_dir)
    assert page.count("<details>") == 1 and "95 Samples/s" in page
    assert tuning_markdown(tmp_path) == "" and tuning_html(tmp_path) == ""


def test_tune_specs_give_each_node_the_scenarios_its_category_runs(tmp_path: Path, inventory) -> None:
    settings = RunSettings(inventory=str(inventory.path), tasks=["resnet50"], scenarios=["Offline", "Server"])
    warnings: list[str] = []
    specs = tune_specs(inventory, settings, "tune-1", warnings.append)
    assert [(s.scenarios, s.modes) for s in specs["node1"]] == [(["Offline"], ["tune"])]
    assert [s.scenarios for s in specs["node2"]] == [["Server", "Offline"]]
    only_server = RunSettings(inventory=str(inventory.path), tasks=["resnet50"], scenarios=["Server"])
    specs = tune_specs(inventory, only_server, "tune-1", warnings.append)
    assert list(specs) == ["node2"] and "node1 (edge) runs none of Server" in warnings[-1]
    with pytest.raises(ConfigError):
        tune_specs(inventory.subset(["node1"]), only_server, "tune-1", warnings.append)
