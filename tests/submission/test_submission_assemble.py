"""Assembly of real LoadGen output from several hosts into the official v3.1 layout."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import rawtree

from fleet.errors import SubmissionError
from fleet.harness.rules import v3_1 as rules
from fleet.submission import accuracylog, sysjson
from fleet.submission.assemble import assemble_submission, read_record
from fleet.submission.checker import check_tree

ORG = "ExampleOrg"


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file()}


def test_three_hosts_make_three_systems_and_the_expected_results(make_run):
    run = make_run()
    root = assemble_submission(run, ORG, division="open")
    org = root / "open" / ORG
    assert sorted(p.name for p in (org / "systems").iterdir()) == [
        "dc-server.json",
        "edge_box_2.json",
        "node1_cpu.json",
    ]
    record = read_record(run / "assembly.json")
    # edge resnet: SingleStream, MultiStream, Offline (x2 hosts); datacenter retinanet: Server, Offline.
    assert len(record["expected"]) == 8
    assert sorted(r["key"] for r in record["results"]) == sorted(record["expected"])
    assert all(r["smoke"] and r["synthetic"] for r in record["results"])
    report = check_tree(root, profile="smoke")
    assert report.ok, report.render()
    assert len(report.results) == len(report.expected) == 8


def test_every_directory_holds_exactly_the_files_of_section_1_4(make_run):
    root = assemble_submission(make_run(), ORG, division="closed", include_synthetic_in_closed=True)
    assert {p.name for p in root.iterdir()} == {"README.md", "closed"}
    assert [p.name for p in (root / "closed").iterdir()] == [ORG]
    org = root / "closed" / ORG
    assert {p.name for p in org.iterdir()} == {"code", "compliance", "measurements", "results", "systems"}
    results = sorted((org / "results").glob("*/*/*"))
    assert len(results) == 8
    assert {p.relative_to(org / "results").parts[1] for p in results} == {"resnet", "retinanet"}
    for scen in results:
        system, model, scenario = scen.relative_to(org / "results").parts
        assert model == ("retinanet" if system == "dc-server" else "resnet")
        assert _files(scen / "performance" / "run_1") == {"mlperf_log_summary.txt", "mlperf_log_detail.txt"}
        assert _files(scen / "accuracy") == {
            "mlperf_log_summary.txt",
            "mlperf_log_detail.txt",
            "mlperf_log_accuracy.json",
            "accuracy.txt",
        }
        meas = org / "measurements" / system / model / scenario
        assert _files(meas) == {
            f"{system}_fleet-onnxruntime-cpu_{scenario}.json",
            "README.md",
            "user.conf",
            "mlperf.conf",
        }
        comp = org / "compliance" / system / model / scenario
        assert {p.name for p in comp.iterdir()} == set(rules.MODELS[model].compliance_tests)
        assert _files(comp / "TEST01") == {"verify_accuracy.txt", "verify_performance.txt"}
        assert _files(comp / "TEST01" / "accuracy") == {"mlperf_log_accuracy.json", "accuracy.txt"}
        for test in rules.MODELS[model].compliance_tests:
            assert _files(comp / test / "performance" / "run_1") == {
                "mlperf_log_summary.txt",
                "mlperf_log_detail.txt",
            }
    assert (org / "code" / "resnet" / "fleet-onnxruntime-cpu" / "README.md").is_file()
    assert (org / "code" / "retinanet" / "fleet-onnxruntime-cpu" / "README.md").is_file()
    assert (org / "code" / "resnet" / "fleet-onnxruntime-cpu" / "harness" / "rules" / "v3_1.py").is_file()
    for dirpath, dirnames, filenames in os.walk(root):
        assert dirnames or filenames, f"empty directory {dirpath}"
        for name in dirnames + filenames:
            assert not name.startswith(".") and " " not in name and name != "__pycache__"
            assert not Path(dirpath, name).is_symlink()


def test_accuracy_is_hashed_on_the_full_log_then_truncated_and_raw_is_kept(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    raw_json = run / "raw/node1/resnet50/Offline/accuracy/mlperf_log_accuracy.json"
    original = raw_json.read_bytes()
    assert len(original) > 2 * accuracylog.KEEP_CHARS, "the fixture must produce a log that needs truncating"
    root = assemble_submission(run, ORG, division="open")
    acc = root / "open" / ORG / "results/node1_cpu/resnet/Offline/accuracy"
    truncated = (acc / "mlperf_log_accuracy.json").read_text()
    assert len(truncated.encode()) <= 10240
    assert truncated == original.decode()[:4096] + "\n\n...\n\n" + original.decode()[-4096:]
    lines = (acc / "accuracy.txt").read_text().splitlines()
    raw_txt = (run / "raw/node1/resnet50/Offline/accuracy/accuracy.txt").read_text()
    assert lines[:-1] == raw_txt.splitlines()
    assert lines[-1] == "hash=" + hashlib.sha256(original).hexdigest()
    assert raw_json.read_bytes() == original, "the untruncated original stays in raw/"
    comp_txt = root / "open" / ORG / "compliance/node1_cpu/resnet/Offline/TEST01/accuracy/accuracy.txt"
    comp_raw = run / "raw/node1/resnet50/Offline/TEST01/accuracy/mlperf_log_accuracy.json"
    assert comp_txt.read_text() == f"hash={hashlib.sha256(comp_raw.read_bytes()).hexdigest()}\n"


def test_system_json_comes_from_facts_with_string_values(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu", cores=16)])
    root = assemble_submission(run, ORG, division="open")
    data = json.loads((root / "open" / ORG / "systems" / "node1_cpu.json").read_text())
    assert set(data) == set(sysjson.REQUIRED_FIELDS)
    assert len(data) == 35
    assert all(isinstance(v, str) for v in data.values())
    manifest = json.loads((run / "raw/node1/manifest.json").read_text())
    assert data["host_processor_model_name"] == manifest["host"]["cpu_model"]
    assert data["host_processor_core_count"] == "16"
    assert data["host_processors_per_node"] == "1"
    assert data["host_memory_capacity"] == "23 GB"
    assert data["accelerators_per_node"] == "0"
    assert data["accelerator_model_name"] == "N/A"
    assert manifest["versions"]["onnxruntime"] in data["framework"]
    assert data["operating_system"] == manifest["host"]["os"]
    assert data["system_type"] == "edge" and data["division"] == "open" and data["submitter"] == ORG
    assert data["host_storage_type"] == rawtree.PERSON_FIELDS["host_storage_type"], "inventory override"
    assert "Synthetic" in data["sw_notes"]


def test_fields_no_fact_provides_are_left_for_a_person(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu", overrides={})])
    root = assemble_submission(run, ORG, division="open")
    data = json.loads((root / "open" / ORG / "systems" / "node1_cpu.json").read_text())
    assert {k for k, v in data.items() if v == "" and k in sysjson.MEANINGFUL_FIELDS} == set(
        sysjson.NEEDS_A_PERSON
    )
    report = check_tree(root, profile="smoke")
    person = [f for f in report.findings if f.kind == "needs-a-person"]
    assert {f.message.split()[0] for f in person} == set(sysjson.NEEDS_A_PERSON)
    assert all(f.path == f"open/{ORG}/systems/node1_cpu.json" for f in person)
    assert "Needs a person" in report.render()
    # A smoke tree is never a submission: the fields are what one still needs, not a failure.
    assert report.ok and report.results == [] and len(report.awaiting_person) == 3
    assert re.match(r"VERDICT: PASS under smoke thresholds \(.*\): 3 of 3 expected results pass",
                    report.verdict())
    assert f"the {len(sysjson.NEEDS_A_PERSON)} systems fields only a person can state" in report.verdict()
    full = check_tree(root)  # under the full rules they fail the tree, as the official checker would
    assert not full.ok and "fields need a person" in full.verdict()


def test_system_names_are_sanitized_and_collisions_refused(make_run):
    run = make_run([rawtree.Host("a1", "lab box"), rawtree.Host("a2", "lab_box", address="192.0.2.99")])
    with pytest.raises(SubmissionError, match="both get system name 'lab_box'"):
        assemble_submission(run, ORG, division="open")


def test_unknown_fleet_system_field_is_refused(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu", overrides={**rawtree.PERSON_FIELDS, "coolng": "air"})])
    with pytest.raises(SubmissionError, match=r"unknown systems-json field.*coolng"):
        assemble_submission(run, ORG, division="open")


def test_synthetic_results_stay_out_of_closed_unless_asked(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    with pytest.raises(SubmissionError, match=r"synthetic.*--division open"):
        assemble_submission(run, ORG, division="closed")
    assert not (run / "submission").exists()
    root = assemble_submission(run, ORG, division="closed", include_synthetic_in_closed=True)
    report = check_tree(root, profile="smoke")
    assert report.ok, report.render()
    assert report.synthetic == report.results


def test_real_results_go_to_closed_and_open_needs_no_model_mapping(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu", synthetic=False)])
    root = assemble_submission(run, ORG)
    assert (root / "closed" / ORG).is_dir()
    assert check_tree(root, profile="smoke").ok
    open_root = assemble_submission(run, ORG, division="open", out=run / "open-tree")
    assert not (open_root / "open" / ORG / "model_mapping.json").exists()
    assert check_tree(open_root, profile="smoke").ok


def test_a_failed_assembly_keeps_the_previous_tree(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    root = assemble_submission(run, ORG, division="open")
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    (run / "raw/node1/resnet50/Offline/performance/run_1/user.conf").write_text(
        "# tuned on rack7 by labadmin\n"
    )
    with pytest.raises(SubmissionError, match="private data"):
        assemble_submission(run, ORG, division="open")
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def test_measurement_readme_says_how_to_reproduce_and_what_the_run_was(make_run):
    root = assemble_submission(make_run([rawtree.Host("node1", "node1_cpu")]), ORG, division="open")
    readme = (root / "open" / ORG / "measurements/node1_cpu/resnet/Offline/README.md").read_text()
    assert "fleet run --inventory INVENTORY --task resnet50 --profile submission" in readme
    assert "system_name=node1_cpu" in readme
    assert "Smoke profile" in readme and "Synthetic assets" in readme
    assert "smoke-profile" in (root / "README.md").read_text()


def test_a_failed_performance_run_is_skipped_and_reported(make_run):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    manifest_path = run / "raw/node1/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["runs"]:
        if entry["scenario"] == "MultiStream" and entry["mode"] == "performance":
            entry.update(outcome="failed", error="backend crashed")
    manifest_path.write_text(json.dumps(manifest))
    root = assemble_submission(run, ORG, division="open")
    record = read_record(run / "assembly.json")
    assert record["skipped"] == [{"key": "node1_cpu/resnet/MultiStream", "reason": "backend crashed"}]
    assert not (root / "open" / ORG / "results/node1_cpu/resnet/MultiStream").exists()
    report = check_tree(root, profile="smoke")
    assert any(
        f.rule == "result-count" and "missing node1_cpu/resnet/MultiStream" in f.message
        for f in report.findings
    )


def test_accelerators_from_facts_and_their_person_fields(make_run):
    gpu = [{"name": "NVIDIA H200", "memory_bytes": 150_323_855_360, "count": 2}]
    host = rawtree.Host("gpu1", "gpu-box", "datacenter", ("retinanet",), accelerators=gpu, synthetic=False)
    run = make_run([host])
    root = assemble_submission(run, ORG)
    data = json.loads((root / "closed" / ORG / "systems" / "gpu-box.json").read_text())
    assert data["accelerators_per_node"] == "2"
    assert data["accelerator_model_name"] == "NVIDIA H200"
    assert data["accelerator_memory_capacity"] == "140 GB"
    assert data["accelerator_host_interconnect"] == ""
    report = check_tree(root, profile="smoke")
    person = {f.message.split()[0] for f in report.findings if f.kind == "needs-a-person"}
    assert person == set(sysjson.ACCELERATOR_PERSON_FIELDS)


def test_a_symlink_in_raw_is_refused(make_run, tmp_path):
    run = make_run([rawtree.Host("node1", "node1_cpu")])
    target = run / "raw/node1/resnet50/Offline/performance/run_1/user.conf"
    secret = tmp_path / "controller-secret.txt"
    secret.write_text("not for publication\n")
    target.unlink()
    target.symlink_to(secret)
    with pytest.raises(SubmissionError, match="symbolic link"):
        assemble_submission(run, ORG, division="open")
    assert not (run / "submission").exists()
