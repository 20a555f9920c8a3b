"""RetinaNet through the real harness: synth, every scenario in the smoke profile, accuracy on
the teacher-labelled set, TEST01/TEST05 compliance."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from taskhelpers import make_harness, paced, required_scenarios, run_scenarios, synth

from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning

pytestmark = pytest.mark.timeout(900)  # a hung LoadGen run fails instead of stalling CI

TASK = "retinanet"
SCENARIOS = required_scenarios(TASK)
PACE_S = 0.15  # per image in Offline runs (a busy 2-core node needs up to ~100 ms)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return synth(TASK, tmp_path_factory.mktemp("retinanet-assets"))


@pytest.fixture(scope="module")
def runs(assets: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_scenarios(TASK, assets, tmp_path_factory.mktemp("retinanet-runs"), SCENARIOS, PACE_S)


def test_synth_writes_a_marked_teacher_labelled_set(assets: tuple[Path, dict[str, Any]]) -> None:
    root, marker = assets
    assert marker["task"] == TASK and marker["samples"] == 8 and marker["empty_images"] == 1
    assert marker["misordered_map"] < 0.5 and marker["distinct_labels"] >= 8
    assert (root / marker["model"]["file"]).is_file()
    assert (root / marker["dataset"]["dir"] / "annotations" / "openimages-mlperf.json").is_file()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_is_valid_and_scores_the_teacher_map(runs: dict[str, Any], scenario: str) -> None:
    perf = runs["entries"][(scenario, "performance")]
    acc = runs["entries"][(scenario, "accuracy")]
    assert perf["outcome"] == "ok", perf["error"]
    assert perf["result_validity"] == "VALID" and perf["synthetic"] is True
    assert acc["outcome"] == "ok", acc["error"]
    assert acc["accuracy"] == pytest.approx(100.0)
    acc_dir = runs["out"] / TASK / scenario / "accuracy"
    text = (acc_dir / "accuracy.txt").read_text()
    assert "ERROR" not in text
    last = text.rstrip("\n").splitlines()[-1]
    assert last == "mAP=100.000%"
    assert re.match(rules.MODELS["retinanet"].accuracy[0].pattern, last)
    log = json.loads((acc_dir / "mlperf_log_accuracy.json").read_text())
    assert sorted(e["qsl_idx"] for e in log) == list(range(8))
    for entry in log:  # records carry their own QSL index, as the reference payload does
        records = np.frombuffer(bytes.fromhex(entry["data"]), np.float32).reshape(-1, 7)
        assert set(records[:, 0].tolist()) <= {float(entry["qsl_idx"])}
    assert sum(1 for e in log if e["data"] == "") == 1


def test_server_bound_and_sample_count_come_from_the_rules(runs: dict[str, Any]) -> None:
    run_dir = runs["out"] / TASK / "Server" / "performance" / "run_1"
    detail = (run_dir / "mlperf_log_detail.txt").read_text()
    bound = rules.MODELS["retinanet"].server_latency_ns
    assert re.search(rf'"key": "requested_server_target_latency_ns", "value": {bound}\b', detail)
    user_conf = (run_dir / "user.conf").read_text()
    assert "retinanet.Server.performance_sample_count_override = 8" in user_conf  # min(64, 8 images)


def test_compliance_test01_and_test05_pass(assets: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    tuning = Tuning(batch_size=1, offline_expected_qps=1 / PACE_S)
    modes = ["performance", "accuracy", "TEST01", "TEST05"]
    harness = make_harness(
        TASK, *assets, tmp_path, ["Offline"], modes, tuning=tuning, wrap_backend=paced(PACE_S)
    )
    # Accuracy first: its images warm the session, so the reference run is not the cold one.
    by_mode = {
        mode: harness.run_one("Offline", mode) for mode in ("accuracy", "performance", "TEST01", "TEST05")
    }
    assert all(e["outcome"] == "ok" for e in by_mode.values()), [e["error"] for e in by_mode.values()]
    assert by_mode["TEST01"]["verify"] == "TEST PASS"
    assert by_mode["TEST05"]["verify"] == "TEST PASS"
    test01 = tmp_path / TASK / "Offline" / "TEST01"
    assert (test01 / "verify_accuracy.txt").read_text().rstrip().endswith("TEST PASS")
    audit_log = json.loads((test01 / "accuracy" / "mlperf_log_accuracy.json").read_text())
    assert audit_log  # the audit run logged responses to compare
