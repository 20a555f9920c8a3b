"""The built-in checker on real merged trees: a correct one passes, each defect has its message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rawtree

from fleet.submission.assemble import assemble_submission
from fleet.submission.checker import check_run, check_tree

ORG = "ExampleOrg"
SYS = "node1_cpu"
ORG_DIR = f"closed/{ORG}"
RESULT = f"{ORG_DIR}/results/{SYS}/resnet"
# Consequences every failing result has in addition to its own rule.
CONSEQUENCES = {"result-count"}


def _closed(run: Path) -> Path:
    return assemble_submission(run, ORG, division="closed", include_synthetic_in_closed=True)


@pytest.fixture
def edge_run(make_run) -> Path:
    return make_run([rawtree.Host("node1", SYS, "edge")])


@pytest.fixture
def tree(edge_run) -> Path:
    return _closed(edge_run)


def _rules(report) -> set[str]:
    return {f.rule for f in report.findings if f.kind != "warning"}


def _only(report, rule: str, path: str) -> None:
    """`rule` is reported on `path`, and nothing else but its consequences."""
    assert any(f.rule == rule and f.path == path for f in report.findings), report.render()
    assert _rules(report) - CONSEQUENCES == {rule}, report.render()
    assert not report.ok


def test_correct_tree_passes_with_smoke_thresholds(tree):
    report = check_tree(tree, profile="smoke")
    assert report.ok, report.render()
    assert (
        report.results
        == report.expected
        == [f"{SYS}/resnet/{s}" for s in ("MultiStream", "Offline", "SingleStream")]
    )
    text = report.render()
    assert "VERDICT: PASS under smoke thresholds" in text
    assert "NOT a v3.1 submission: that needs fleet run --profile submission" in text


def test_default_rules_fail_smoke_runs_and_say_why(tree):
    report = check_tree(tree)
    text = report.render()
    assert "VERDICT: FAIL under the full v3.1 rules" in text
    assert "Smoke-profile results: 3 of 3" in text and "--profile smoke" in text
    detail = f"{RESULT}/SingleStream/performance/run_1/mlperf_log_detail.txt"
    assert f"{detail}: [min-duration] effective_min_duration_ms is 100, needs to be >= 600000 (600 s)" in text
    assert (
        f"{detail}: [performance-sample-count] effective_performance_sample_count is 64, needs to be >= 1024"
        in text
    )


def test_short_duration_is_an_error_under_default_rules(tree):
    report = check_tree(tree)
    durations = [f for f in report.findings if f.rule == "min-duration"]
    # Three results and their nine compliance runs, all real 100 ms LoadGen runs.
    assert len(durations) == 12
    assert all(f.kind == "rule" for f in durations)


def test_too_few_queries(tree):
    report = check_tree(tree)
    offline = f"{RESULT}/Offline/performance/run_1/mlperf_log_detail.txt"
    found = [f for f in report.findings if f.rule == "min-queries" and f.path == offline]
    assert found and "needs >= 24576" in found[0].message


def test_wrong_seed(edge_run, logset):
    rawtree.replace_run(
        edge_run, "node1", "resnet50", "Offline", "performance", logset / "variants/wrong_seed"
    )
    report = check_tree(_closed(edge_run), profile="smoke")
    _only(report, "seed", f"{RESULT}/Offline/performance/run_1/mlperf_log_detail.txt")
    assert "effective_qsl_rng_seed is 1, expected 148687905518835231" in report.render()


def test_invalid_result(edge_run, logset):
    rawtree.replace_run(edge_run, "node1", "resnet50", "Offline", "performance", logset / "variants/invalid")
    report = check_tree(_closed(edge_run), profile="smoke")
    _only(report, "validity", f"{RESULT}/Offline/performance/run_1/mlperf_log_detail.txt")
    assert "result_validity is 'INVALID', must be VALID" in report.render()


def test_accuracy_below_target(edge_run, logset):
    rawtree.replace_run(
        edge_run, "node1", "resnet50", "Offline", "accuracy", logset / "variants/broken_accuracy"
    )
    report = check_tree(_closed(edge_run), profile="smoke")
    _only(report, "accuracy", f"{RESULT}/Offline/accuracy/accuracy.txt")
    assert "acc" in report.render() and "is below the target 75.6954" in report.render()


def test_accuracy_below_target_is_only_a_warning_in_open(edge_run, logset):
    rawtree.replace_run(
        edge_run, "node1", "resnet50", "Offline", "accuracy", logset / "variants/broken_accuracy"
    )
    report = check_tree(assemble_submission(edge_run, ORG, division="open"), profile="smoke")
    assert report.ok, report.render()
    assert any("[accuracy]" in w for w in report.warnings)


def test_missing_file(tree):
    (tree / RESULT / "Offline/performance/run_1/mlperf_log_summary.txt").unlink()
    _only(
        check_tree(tree, profile="smoke"),
        "missing-file",
        f"{RESULT}/Offline/performance/run_1/mlperf_log_summary.txt",
    )


def test_empty_readme(tree):
    (tree / ORG_DIR / f"measurements/{SYS}/resnet/SingleStream/README.md").write_text("")
    _only(
        check_tree(tree, profile="smoke"),
        "empty-file",
        f"{ORG_DIR}/measurements/{SYS}/resnet/SingleStream/README.md",
    )


@pytest.mark.parametrize(
    ("field", "value", "also"),
    [
        ("host_processors_per_node", 1, set()),
        # The official checker also reads an integer 0 as "empty" (reference 5.1).
        ("accelerators_per_node", 0, {"system-field-empty"}),
    ],
)
def test_integer_instead_of_string_in_systems_json(tree, field, value, also):
    path = tree / ORG_DIR / f"systems/{SYS}.json"
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    report = check_tree(tree, profile="smoke")
    assert _rules(report) - CONSEQUENCES == {"system-field-type", *also}, report.render()
    message = f"[system-field-type] {field} is int {value}: every value must be a string"
    assert f"{ORG_DIR}/systems/{SYS}.json: {message}" in report.render()
    assert report.results == [], "a broken systems json drops every result of that system"


@pytest.mark.parametrize(
    ("name", "rule"),
    [(".gitkeep", "hidden-name"), ("run notes.md", "space-in-name")],
)
def test_forbidden_names(tree, name, rule):
    (tree / ORG_DIR / f"measurements/{SYS}/resnet/Offline" / name).write_text("x")
    _only(check_tree(tree, profile="smoke"), rule, f"{ORG_DIR}/measurements/{SYS}/resnet/Offline/{name}")


def test_file_in_the_division_folder(tree):
    (tree / "closed" / "README.md").write_text("hello")
    _only(check_tree(tree, profile="smoke"), "division-file", "closed/README.md")


def test_empty_directory_and_file_in_root(tree):
    (tree / ORG_DIR / "code" / "resnet" / "empty").mkdir()
    (tree / "notes.txt").write_text("x")
    rules = _rules(check_tree(tree, profile="smoke"))
    assert {"empty-dir", "root-file"} <= rules


def test_missing_required_scenario(make_run):
    run = make_run([rawtree.Host("dc1", "dc-server", "datacenter", scenarios=("Offline",))])
    report = check_tree(_closed(run), profile="smoke")
    _only(report, "missing-scenario", f"{ORG_DIR}/results/dc-server/resnet")
    assert "required scenario Server is missing" in report.render()
    assert "missing dc-server/resnet/Server" in report.render()
    assert report.results == ["dc-server/resnet/Offline"]


def test_compliance_test_fail(edge_run):
    verify = edge_run / "raw/node1/resnet50/SingleStream/TEST04/verify_performance.txt"
    verify.write_text("reference score = 1184.2\ntest score = 1422.0\nTEST FAIL: Test score invalid\n")
    report = check_tree(_closed(edge_run), profile="smoke")
    _only(
        report,
        "compliance-fail",
        f"{ORG_DIR}/compliance/{SYS}/resnet/SingleStream/TEST04/verify_performance.txt",
    )
    assert "TEST04 performance verification failed (TEST FAIL: Test score invalid)" in report.render()


def test_effective_scenario_must_match_the_directory(edge_run):
    src = edge_run / "raw/node1/resnet50/Offline/performance/run_1"
    rawtree.replace_run(edge_run, "node1", "resnet50", "SingleStream", "performance", src)
    report = check_tree(_closed(edge_run), profile="smoke")
    path = f"{RESULT}/SingleStream/performance/run_1/mlperf_log_detail.txt"
    assert any(f.rule == "scenario-mismatch" and f.path == path for f in report.findings), report.render()


def test_test_mode_per_directory(tree):
    acc = tree / RESULT / "Offline/accuracy/mlperf_log_detail.txt"
    shutil.copyfile(tree / RESULT / "Offline/performance/run_1/mlperf_log_detail.txt", acc)
    _only(check_tree(tree, profile="smoke"), "test-mode", f"{RESULT}/Offline/accuracy/mlperf_log_detail.txt")


def test_untruncated_accuracy_log_and_missing_hash(tree, edge_run):
    acc = tree / RESULT / "Offline/accuracy"
    shutil.copyfile(
        edge_run / "raw/node1/resnet50/Offline/accuracy/mlperf_log_accuracy.json",
        acc / "mlperf_log_accuracy.json",
    )
    (acc / "accuracy.txt").write_text((acc / "accuracy.txt").read_text().split("hash=")[0])
    assert {"accuracy-log-size", "accuracy-hash"} <= _rules(check_tree(tree, profile="smoke"))


def test_expected_results_are_counted(tree):
    shutil.rmtree(tree / RESULT / "MultiStream")
    report = check_tree(tree, profile="smoke")
    assert any(
        f.rule == "result-count" and "expected 3 results, 2 pass" in f.message for f in report.findings
    )
    extra = check_tree(tree, expected=["other/resnet/Offline"], profile="smoke")
    assert any("missing other/resnet/Offline" in p for p in extra.problems)


def test_check_run_writes_check_txt(edge_run):
    _closed(edge_run)
    report = check_run(edge_run, profile="smoke")
    assert report.ok
    assert (edge_run / "check.txt").read_text() == report.render()
    assert report.render().rstrip().splitlines()[-1].startswith("VERDICT: PASS")


@pytest.mark.parametrize(("compliance_acc", "passes"), [(99.5, True), (97.0, False)])
def test_test01_non_determinism_fallback(edge_run, compliance_acc, passes):
    """verify_accuracy without TEST PASS: baseline and compliance accuracy within 1% (7.3.4)."""
    test01 = edge_run / "raw/node1/resnet50/Offline/TEST01"
    (test01 / "verify_accuracy.txt").write_text("num_perf_log_data_mismatch = 3\nTEST FAIL\n")
    (test01 / "accuracy/baseline_accuracy.txt").write_text("accuracy=100.000%, good=256, total=256\n")
    (test01 / "accuracy/compliance_accuracy.txt").write_text(
        f"accuracy={compliance_acc:.3f}%, good=1, total=1\n"
    )
    tree = _closed(edge_run)
    acc = tree / ORG_DIR / f"compliance/{SYS}/resnet/Offline/TEST01/accuracy"
    assert {p.name for p in acc.iterdir()} == {
        "mlperf_log_accuracy.json",
        "accuracy.txt",
        "baseline_accuracy.txt",
        "compliance_accuracy.txt",
    }
    report = check_tree(tree, profile="smoke")
    if passes:
        assert report.ok, report.render()
    else:
        _only(report, "compliance-fail", f"{ORG_DIR}/compliance/{SYS}/resnet/Offline/TEST01/accuracy")


def test_fallback_files_stay_out_when_verify_passed(edge_run):
    (edge_run / "raw/node1/resnet50/Offline/TEST01/accuracy/baseline_accuracy.txt").write_text(
        "accuracy=1%\n"
    )
    tree = _closed(edge_run)
    acc = tree / ORG_DIR / f"compliance/{SYS}/resnet/Offline/TEST01/accuracy"
    assert {p.name for p in acc.iterdir()} == {"mlperf_log_accuracy.json", "accuracy.txt"}
    assert check_tree(tree, profile="smoke").ok
