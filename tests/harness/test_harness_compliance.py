"""TEST01/TEST04/TEST05: audit settings applied, layout as contracted, pass when correct, fail when broken.

The SUT is the small model behind a backend padded to a fixed time per batch (conftest
PacedBackend), so the performance comparisons do not depend on what else the two cores
are doing; faults are injected in-process for one mode at a time.
"""

from __future__ import annotations

import json

import pytest
from harness_helpers import make_harness

from fleet.harness.compliance.verify import read_summary, verify_performance
from fleet.harness.detail_log import read_detail
from fleet.harness.rules import v3_1 as rules

pytestmark = pytest.mark.timeout(900)

BASE = "resnet50/Offline"


def _detail(harness, mode):
    return read_detail(harness.out / BASE / mode / "performance/run_1/mlperf_log_detail.txt")


def _run(harness, faults, mode, **fault):
    for name in ("wrong_answers_in", "cache_results_in", "slow_in"):
        getattr(faults, name).clear()
    for name, value in fault.items():
        getattr(faults, name).add(value)
    try:
        return harness.run_one("Offline", mode)
    finally:
        for name in fault:
            getattr(faults, name).clear()


@pytest.mark.parametrize("mode", ["TEST01", "TEST04", "TEST05"])
def test_compliance_passes_on_a_correct_sut(compliance_harness, mode):
    harness, faults = compliance_harness
    entry = _run(harness, faults, mode)
    test_dir = harness.out / BASE / mode
    perf = (test_dir / "verify_performance.txt").read_text()
    assert entry["outcome"] == "ok", entry["error"]
    assert entry["verify"] == "TEST PASS", perf
    assert "TEST PASS" in perf
    run_dir = test_dir / "performance/run_1"
    files = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf.conf", "user.conf", "audit.config")
    for name in files:
        assert (run_dir / name).is_file(), name
    if mode == "TEST01":
        assert "TEST PASS" in (test_dir / "verify_accuracy.txt").read_text()
        logged = json.loads((test_dir / "accuracy/mlperf_log_accuracy.json").read_text())
        assert logged, "TEST01 logs responses during the performance run"


def test_audit_settings_show_in_detail_logs(compliance_harness):
    harness, faults = compliance_harness
    for mode in ("TEST01", "TEST04", "TEST05"):
        if not (harness.out / BASE / mode / "performance/run_1/mlperf_log_detail.txt").is_file():
            _run(harness, faults, mode)
    t01, t04, t05 = (_detail(harness, m) for m in ("TEST01", "TEST04", "TEST05"))
    assert t01.get("effective_test_mode") == "PerformanceOnly"
    assert t01.get("effective_accuracy_log_rng_seed") == rules.TEST01_ACCURACY_LOG_RNG_SEED
    assert t01.get("effective_accuracy_log_sampling_target") == rules.MODELS["resnet"].test01_sampling_target
    assert t01.get("effective_qsl_rng_seed") == rules.SEEDS.qsl_rng_seed
    assert t04.get("effective_performance_issue_same") is True
    assert t04.get("effective_performance_issue_unique") is False
    assert t04.get("effective_performance_issue_same_index") == rules.TEST04_ISSUE_SAME_INDEX
    assert t05.get("effective_qsl_rng_seed") == rules.TEST05_SEEDS.qsl_rng_seed
    assert t05.get("effective_sample_index_rng_seed") == rules.TEST05_SEEDS.sample_index_rng_seed
    assert t05.get("effective_schedule_rng_seed") == rules.TEST05_SEEDS.schedule_rng_seed
    audit = (harness.out / BASE / "TEST05/performance/run_1/audit.config").read_text()
    assert "*.*.test05 = 1" in audit


def test_test01_fails_when_performance_mode_answers_differ(compliance_harness):
    harness, faults = compliance_harness
    entry = _run(harness, faults, "TEST01", wrong_answers_in="TEST01")
    test_dir = harness.out / BASE / "TEST01"
    assert entry["verify"] == "TEST FAIL"
    verify = (test_dir / "verify_accuracy.txt").read_text()
    assert "TEST FAIL" in verify and "num_perf_log_data_mismatch = 0" not in verify
    # The fallback the checker accepts (accuracy on the same samples) fails too.
    assert (test_dir / "accuracy/baseline_accuracy.txt").read_text().startswith("accuracy=100.000%")
    assert (test_dir / "accuracy/compliance_accuracy.txt").read_text().startswith("accuracy=0.000%")


def test_test04_fails_when_the_sut_caches_results(compliance_harness):
    harness, faults = compliance_harness
    entry = _run(harness, faults, "TEST04", cache_results_in="TEST04")
    assert entry["verify"] == "TEST FAIL"
    assert "TEST FAIL" in (harness.out / BASE / "TEST04/verify_performance.txt").read_text()


def test_test05_fails_when_the_sut_is_slower_with_other_seeds(compliance_harness):
    harness, faults = compliance_harness
    entry = _run(harness, faults, "TEST05", slow_in="TEST05")
    assert entry["verify"] == "TEST FAIL"
    verify = (harness.out / BASE / "TEST05/verify_performance.txt").read_text()
    assert "TEST FAIL: Test score invalid" in verify


def test_compliance_without_its_reference_is_a_failed_run(small_assets, tmp_path):
    harness = make_harness(small_assets, tmp_path, ["Offline"], ["TEST04"])
    entry = harness.run_one("Offline", "TEST04")
    harness.backend.close()
    assert entry["outcome"] == "failed" and "run mode performance first" in entry["error"]


SUMMARY = """================================================
MLPerf Results Summary
================================================
SUT name : PyFastSUT
Scenario : {scenario}
Mode     : PerformanceOnly
{score_line}
Result is : {validity}
"""


def _summary(tmp_path, name, scenario, score, validity="VALID"):
    score_line = {
        "Offline": f"Samples per second: {score}",
        "Server": f"Completed samples per second    : {score}",
        "SingleStream": f" * Early stopping 90.0th percentile estimate: {int(score)}",
        "MultiStream": f" * Early stopping 99th percentile estimate: {int(score)}",
    }[scenario]
    path = tmp_path / name
    path.write_text(SUMMARY.format(scenario=scenario, score_line=score_line, validity=validity))
    return path


@pytest.mark.parametrize("test, scenario, ref, new, passed", [
    ("TEST01", "Offline", 100, 109, True), ("TEST01", "Offline", 100, 111, False),
    ("TEST01", "Offline", 100, 91, True), ("TEST01", "Offline", 100, 89, False),
    ("TEST04", "Offline", 100, 109, True), ("TEST04", "Offline", 100, 111, False),
    ("TEST04", "SingleStream", 1_000_000, 920_000, True),  # 1e9/lat: 1087 < 1100
    ("TEST04", "SingleStream", 1_000_000, 900_000, False),  # 1111 > 1100: faster = cached
    ("TEST04", "SingleStream", 150_000, 130_000, True),  # short latency: 20%
    ("TEST05", "Offline", 100, 96, True), ("TEST05", "Offline", 100, 94, False),
    ("TEST05", "Server", 100, 96, True), ("TEST05", "Server", 100, 94, False),
    ("TEST05", "MultiStream", 10_000_000, 10_400_000, True),
    ("TEST05", "MultiStream", 10_000_000, 10_600_000, False),
])
def test_verify_performance_thresholds(tmp_path, test, scenario, ref, new, passed):
    verdict = verify_performance(test, _summary(tmp_path, "ref.txt", scenario, ref),
                                 _summary(tmp_path, "test.txt", scenario, new))
    assert verdict.passed is passed, verdict.text
    assert verdict.text.rstrip().endswith("TEST PASS" if passed else "TEST FAIL: Test score invalid")


def test_verify_performance_rejects_invalid_or_mismatched_runs(tmp_path):
    ref = _summary(tmp_path, "ref.txt", "Offline", 100)
    bad = _summary(tmp_path, "bad.txt", "Offline", 100, validity="INVALID")
    other = _summary(tmp_path, "other.txt", "Server", 100)
    assert "Test results are invalid" in verify_performance("TEST05", ref, bad).text
    assert "Reference results are invalid" in verify_performance("TEST05", bad, ref).text
    assert "do not match" in verify_performance("TEST04", ref, other).text
    assert read_summary(_summary(tmp_path, "ss.txt", "SingleStream", 123456)).score == 123456
