"""BERT (bert-99, bert-99.9) through the real harness: synth, the required scenarios in the smoke
profile, EM/F1 on the teacher-labelled set, TEST01/TEST05 compliance."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from taskhelpers import make_harness, paced, required_scenarios, run_scenarios, synth

from fleet.harness.detail_log import read_detail
from fleet.harness.errors import HarnessError
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning

pytestmark = pytest.mark.timeout(900)  # a hung LoadGen run fails instead of stalling CI

# Every scenario some category requires (bert-99: edge SingleStream/Offline, datacenter Server/Offline).
SCENARIOS = required_scenarios("bert-99")
PACE_S = 0.1  # per sample in Offline runs (a busy 2-core node needs up to ~60 ms)
BATCH = 2
PERFECT = '{"exact_match": 100.0, "f1": 100.0}'


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return synth("bert-99", tmp_path_factory.mktemp("bert-assets"))


@pytest.fixture(scope="module")
def runs(assets: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_scenarios("bert-99", assets, tmp_path_factory.mktemp("bert-runs"), SCENARIOS, PACE_S)


def test_synth_writes_a_marked_teacher_labelled_set(assets: tuple[Path, dict[str, Any]]) -> None:
    root, marker = assets
    assert marker["task"] == "bert-99" and marker["samples"] > marker["questions"] >= 12
    assert marker["multi_span_questions"] >= 1 and marker["distinct_answers"] == marker["questions"]
    assert marker["misordered_f1"] < 50
    dataset = root / marker["dataset"]["dir"]
    assert (dataset / "dev-v1.1.json").is_file() and (dataset / "vocab.txt").is_file()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_is_valid_and_scores_the_teacher_f1(runs: dict[str, Any], scenario: str) -> None:
    perf = runs["entries"][(scenario, "performance")]
    acc = runs["entries"][(scenario, "accuracy")]
    assert perf["outcome"] == "ok", perf["error"]
    summary = runs["out"] / perf["dir"] / "mlperf_log_summary.txt"
    assert perf["result_validity"] == "VALID", summary.read_text()
    assert acc["outcome"] == "ok", acc["error"]
    text = (runs["out"] / acc["dir"] / "accuracy.txt").read_text()
    assert text == PERFECT + "\n"
    assert float(re.match(rules.MODELS["bert-99"].accuracy[0].pattern, text).group(1)) == 100.0
    assert acc["accuracy"] == 100.0
    log = json.loads((runs["out"] / acc["dir"] / "mlperf_log_accuracy.json").read_text())
    assert all(len(bytes.fromhex(e["data"])) == 384 * 2 * 4 for e in log)  # [384, 2] float32


def test_server_runs_under_the_bert_bound(runs: dict[str, Any]) -> None:
    run_dir = runs["out"] / runs["entries"][("Server", "performance")]["dir"]
    detail = read_detail(run_dir / "mlperf_log_detail.txt")
    assert detail.get("effective_target_latency_ns") == rules.MODELS["bert-99"].server_latency_ns


def test_bert_999_is_datacenter_only_and_scores_the_same(
    assets: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    with pytest.raises(HarnessError, match="no SingleStream"):
        make_harness("bert-99.9", *assets, tmp_path, ["SingleStream"], ["performance"])
    harness = make_harness("bert-99.9", *assets, tmp_path, ["Offline"], ["accuracy"])
    (entry,) = harness.run()
    assert entry["outcome"] == "ok" and entry["model"] == "bert-99.9" and entry["accuracy"] == 100.0
    assert (tmp_path / "bert-99.9" / "Offline" / "accuracy" / "accuracy.txt").read_text() == PERFECT + "\n"


def _swap_start_end(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    start, end = outputs["output_start_logits"], outputs["output_end_logits"]
    return {"output_start_logits": end, "output_end_logits": start}


def test_compliance_test01_and_test05_pass_and_test01_catches_wrong_answers(
    assets: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    tuning = Tuning(batch_size=BATCH, offline_expected_qps=1 / PACE_S)
    modes = ["performance", "accuracy", "TEST01", "TEST05"]
    good = make_harness(
        "bert-99", *assets, tmp_path / "good", ["Offline"], modes, tuning=tuning, wrap_backend=paced(PACE_S)
    )
    # Accuracy first: its batches warm the session, so the reference run is not the cold one.
    by_mode = {
        mode: good.run_one("Offline", mode) for mode in ("accuracy", "performance", "TEST01", "TEST05")
    }
    assert all(e["outcome"] == "ok" for e in by_mode.values()), [e["error"] for e in by_mode.values()]
    assert by_mode["accuracy"]["accuracy"] == 100.0  # batches of BATCH answer like batch 1
    assert by_mode["TEST01"]["verify"] == "TEST PASS"
    assert by_mode["TEST05"]["verify"] == "TEST PASS"

    bad = make_harness(
        "bert-99",
        *assets,
        tmp_path / "bad",
        ["Offline"],
        modes[:3],
        tuning=tuning,
        wrap_backend=paced(PACE_S, {"TEST01": _swap_start_end}),
    )
    entries = {mode: bad.run_one("Offline", mode) for mode in ("accuracy", "performance", "TEST01")}
    assert entries["TEST01"]["verify"] == "TEST FAIL"
