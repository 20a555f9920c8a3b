"""fleet.logparse on real LoadGen output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fleet import logparse
from fleet.harness.rules import v3_1 as rules

RESNET = [(m.name, m.pattern) for m in rules.MODELS["resnet"].accuracy]


def _record(key: str, value, is_error: bool = False) -> str:
    meta = {"is_error": is_error, "is_warning": False, "file": "x.cc", "line_no": 1, "pid": 1, "tid": 1}
    return (
        ":::MLLOG "
        + json.dumps(
            {
                "key": key,
                "value": value,
                "time_ms": 1.0,
                "namespace": "mlperf::logging",
                "event_type": "POINT_IN_TIME",
                "metadata": meta,
            }
        )
        + "\n"
    )


def test_detail_log_of_a_real_run(logset):
    log = logparse.parse_detail(logset / "Offline/performance/run_1/mlperf_log_detail.txt")
    assert log.readable and not log.errors
    assert log.validity == "VALID"
    assert log.scenario == "Offline" and log.test_mode == "PerformanceOnly"
    assert log.get("effective_qsl_rng_seed") == rules.SEEDS.qsl_rng_seed
    assert log.number("result_samples_per_second") > 0
    assert log.latency_percentile_ns(99.0) > 0
    multi = logparse.parse_detail(logset / "MultiStream/performance/run_1/mlperf_log_detail.txt")
    assert multi.latency_percentile_ns(99.0) == multi.number("result_99.00_percentile_per_query_latency_ns")


def test_first_occurrence_wins_errors_are_kept_and_bad_lines_reported(logset, tmp_path):
    path = tmp_path / "mlperf_log_detail.txt"
    shutil.copyfile(logset / "Offline/performance/run_1/mlperf_log_detail.txt", path)
    with open(path, "a") as handle:
        handle.write(_record("result_validity", "INVALID"))
        handle.write(
            _record("error_uncommitted_loadgen_changes", "Loadgen built with uncommitted changes!", True)
        )
        handle.write(":::MLLOG {not json\n")
        handle.write("plain text lines are ignored\n")
    log = logparse.parse_detail(path)
    assert log.validity == "VALID"
    assert [e.key for e in log.errors] == ["error_uncommitted_loadgen_changes"]
    assert len(log.invalid_lines) == 1 and not log.readable


def test_record_without_is_error_is_invalid(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text(':::MLLOG {"key": "a", "value": 1, "metadata": {}}\n')
    assert logparse.parse_detail(path).invalid_lines


def test_summary(logset):
    summary = logparse.parse_summary(logset / "Server/performance/run_1/mlperf_log_summary.txt")
    assert summary.valid is True
    assert summary.scenario == "Server"
    assert summary.number("Completed samples per second") > 0


def test_accuracy_text_matches_like_the_checker(tmp_path):
    text = "noise\naccuracy=76.078%, good=38039, total=50000\nhash=abc123\n"
    parsed = logparse.parse_accuracy_text(text, RESNET)
    assert parsed.metrics == {"acc": [76.078]} and parsed.hash == "abc123"
    assert logparse.parse_accuracy_text("  accuracy=80%\n", RESNET).metrics == {}, (
        "re.match anchors at line start"
    )
    gptj = [(m.name, m.pattern) for m in rules.MODELS["gptj-99"].accuracy]
    line = (
        "{'rouge1': 42.9056, 'rouge2': 20.039, 'rougeL': 29.9348, 'rougeLsum': 40.0451, 'gen_len': 3934249}"
    )
    assert logparse.parse_accuracy_text(line, gptj).first("GEN_LEN") == 3934249


def test_verify_files(logset):
    verify = logparse.parse_verify(logset / "Offline/TEST01/verify_accuracy.txt")
    assert verify.passed and verify.verdict == "TEST PASS"
    assert verify.numbers["num_perf_log_data_mismatch"] == 0
    assert verify.numbers["num_perf_log_entries"] > 0
    perf = logparse.parse_verify(logset / "Offline/TEST05/verify_performance.txt")
    assert perf.passed and perf.numbers["reference score"] > 0


def test_verify_fail(tmp_path: Path):
    path = tmp_path / "verify_performance.txt"
    path.write_text("reference score = 10\ntest score = 20\nTEST FAIL: Test score invalid\n")
    result = logparse.parse_verify(path)
    assert not result.passed and result.verdict == "TEST FAIL: Test score invalid"
    assert result.numbers == {"reference score": 10.0, "test score": 20.0}
