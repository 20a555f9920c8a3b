"""The node harness's real output (python -m fleet.harness) merged, checked and reported."""

from __future__ import annotations

import json
import re

import pytest
import rawtree

from fleet.report.frame import collect_rows, results_frame
from fleet.submission.assemble import assemble_submission, read_record
from fleet.submission.checker import check_tree

ORG = "ExampleOrg"


def _hosts() -> list[rawtree.Host]:
    return [
        rawtree.Host("node1", "node1_cpu", "edge", address="192.0.2.11"),
        rawtree.Host("node2", "node2_cpu", "edge", address="192.0.2.12"),
        rawtree.Host("dc1", "dc-server", "datacenter", address="192.0.2.13"),
    ]


@pytest.fixture
def harness_run(harness_out, tmp_path):
    return rawtree.build_run_from_harness(tmp_path / "runs" / "run-h", harness_out, _hosts())


def test_harness_output_merges_into_an_open_tree_that_passes_smoke_checks(harness_run, harness_out):
    manifest = json.loads((harness_out / "manifest.json").read_text())
    perf = next(r for r in manifest["runs"] if r["mode"] == "performance")
    if perf["result_validity"] != "VALID":
        pytest.fail(f"the harness produced an INVALID Offline smoke run: {perf}")
    root = assemble_submission(harness_run, ORG, division="open")
    record = read_record(harness_run / "assembly.json")
    assert sorted(record["expected"]) == [
        "dc-server/resnet/Offline",
        "node1_cpu/resnet/Offline",
        "node2_cpu/resnet/Offline",
    ]
    report = check_tree(root, profile="smoke")
    assert report.ok, report.render()
    assert len(report.results) == 3
    org = root / "open" / ORG
    acc = org / "results/node1_cpu/resnet/Offline/accuracy"
    assert re.fullmatch(
        r"accuracy=100\.000%.*\nhash=[0-9a-f]{64}\n", (acc / "accuracy.txt").read_text(), re.S
    )
    comp_json = org / "compliance/node1_cpu/resnet/Offline/TEST01/accuracy/mlperf_log_accuracy.json"
    assert comp_json.stat().st_size <= 8199
    secrets = {s for h in _hosts() for s in h.secrets()} | {str(harness_out.parent), perf["model_path"]}
    for path in (p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for secret in secrets:  # as a word: "node2" inside the system name "node2_cpu" is that name
            assert not re.search(rb"(?<![\w-])" + re.escape(secret.encode()) + rb"(?![\w-])", data), (
                secret,
                path,
            )


def test_checker_agrees_with_the_harness_verdicts_in_closed(harness_run, harness_out):
    """Whatever the timing did, the checker must see exactly the audits the harness failed."""
    manifest = json.loads((harness_out / "manifest.json").read_text())
    root = assemble_submission(harness_run, ORG, division="closed", include_synthetic_in_closed=True)
    report = check_tree(root, profile="smoke")
    failed_by_checker = {
        f.path.split("/")[-2]
        for f in report.findings
        if f.rule == "compliance-fail" and "/node1_cpu/" in f.path
    }
    failed_by_harness = {r["mode"] for r in manifest["runs"] if r.get("verify") == "TEST FAIL"}
    assert failed_by_checker == failed_by_harness
    missing = {f.message.split()[2] for f in report.findings if f.rule == "missing-scenario"}
    assert missing == {"SingleStream", "MultiStream", "Server"}, "edge needs SS+MS, datacenter Server"
    assert not report.ok


def test_report_values_match_the_harness_manifest(harness_run, harness_out):
    manifest = json.loads((harness_out / "manifest.json").read_text())
    frame = results_frame(collect_rows(harness_run))
    assert len(frame) == 3 * len(manifest["runs"])
    node1 = frame[frame.system == "node1_cpu"].set_index("mode")
    for run in manifest["runs"]:
        if run["result"] is not None:
            assert node1.loc[run["mode"], "value"] == pytest.approx(run["result"], rel=1e-6), run["mode"]
        if run["accuracy"] is not None:
            assert node1.loc[run["mode"], "accuracy"] == pytest.approx(run["accuracy"])
    assert frame["synthetic"].all()
