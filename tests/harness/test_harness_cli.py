"""`python -m fleet.harness` as a user runs it: bad inputs give one line on stderr and exit 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "fleet.harness", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=240)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fleet.harness: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run_args(assets, out: Path, **overrides: str) -> list[str]:
    opts = {"--task": "resnet50", "--scenario": "Offline", "--mode": "performance",
            "--model": str(assets.model), "--dataset": str(assets.dataset), "--out": str(out)}
    opts.update(overrides)
    return ["run", *[x for kv in opts.items() for x in kv]]


@pytest.mark.parametrize("flag, value, fragments", [
    ("--task", "resnet101", ["unknown task 'resnet101'", "resnet50"]),
    ("--scenario", "Batch", ["unknown scenario 'Batch'", "Offline"]),
    ("--mode", "TEST06", ["unknown mode 'TEST06'", "TEST05"]),
    ("--profile", "quick", ["unknown profile 'quick'"]),
    ("--backend", "tvm", ["unknown backend 'tvm'"]),
    ("--model", "/nonexistent/resnet50_v1.onnx", ["model /nonexistent/resnet50_v1.onnx does not exist"]),
    ("--dataset", "/nonexistent/imagenet", ["dataset /nonexistent/imagenet does not exist"]),
    ("--profile", "submission", ["needs at least 1024 samples", "has 64"]),
])
def test_bad_run_arguments(small_assets, tmp_path, flag, value, fragments):
    assert_one_line_error(harness(*run_args(small_assets, tmp_path / "out", **{flag: value})), *fragments)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_unavailable_execution_provider(small_assets, tmp_path):
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    proc = harness(*run_args(small_assets, tmp_path / "out", **{"--execution-provider": "tensorrt"}))
    assert_one_line_error(proc, "TensorrtExecutionProvider is not available", "onnxruntime-gpu")


def test_bad_command_line(tmp_path):
    assert_one_line_error(harness("run", "--task", "resnet50"), "--out")
    assert_one_line_error(harness("frobnicate"), "invalid choice")
    assert_one_line_error(harness("run", "--out", str(tmp_path), "--task", "resnet50", "--threads", "0",
                                  "--scenario", "Offline", "--model", "m", "--dataset", "d"), "--threads")


def test_model_that_does_not_fit_the_task(small_assets, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 224, 224])
    y = helper.make_tensor_value_info("ArgMax:0", TensorProto.INT64, ["N"])
    graph = helper.make_graph([helper.make_node("ArgMax", ["flat"], ["ArgMax:0"], axis=1, keepdims=0),
                               helper.make_node("Flatten", ["data"], ["flat"])][::-1], "wrong", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "wrong.onnx"
    onnx.save(model, str(path))
    proc = harness(*run_args(small_assets, tmp_path / "out", **{"--model": str(path)}))
    assert_one_line_error(proc, "does not fit the task", "input_tensor:0")


def test_not_an_onnx_file(small_assets, tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    assert_one_line_error(harness(*run_args(small_assets, tmp_path / "out", **{"--model": str(path)})),
                          "onnxruntime cannot load it")


def _copy_dataset(assets, tmp_path: Path) -> Path:
    dataset = tmp_path / "imagenet"
    shutil.copytree(assets.dataset, dataset)
    return dataset


def test_missing_image_is_named(small_assets, tmp_path):
    dataset = _copy_dataset(small_assets, tmp_path)
    victim = dataset / "val/ILSVRC2012_val_00000005.JPEG"
    victim.unlink()
    proc = harness(*run_args(small_assets, tmp_path / "out", **{"--dataset": str(dataset)}))
    assert_one_line_error(proc, str(victim), "does not exist")


def test_unreadable_image_is_named(small_assets, tmp_path):
    dataset = _copy_dataset(small_assets, tmp_path)
    victim = dataset / "val/ILSVRC2012_val_00000009.JPEG"
    victim.write_bytes(b"\xff\xd8 truncated")
    proc = harness(*run_args(small_assets, tmp_path / "out", **{"--dataset": str(dataset),
                                                                 "--cache": str(tmp_path / "cache")}))
    assert_one_line_error(proc, str(victim), "cannot read image")


def test_missing_val_map(small_assets, tmp_path):
    dataset = _copy_dataset(small_assets, tmp_path)
    (dataset / "val_map.txt").unlink()
    proc = harness(*run_args(small_assets, tmp_path / "out", **{"--dataset": str(dataset)}))
    assert_one_line_error(proc, "val_map.txt not found")


def test_bad_spec_file(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"task": "resnet50", "scenarios": ["Offline"], "colour": "blue"}))
    assert_one_line_error(harness("run", "--spec", str(spec), "--out", str(tmp_path / "out")),
                          "unknown spec field(s): colour")
    assert_one_line_error(harness("run", "--spec", str(tmp_path / "none.json"), "--out", str(tmp_path)),
                          "does not exist")


def test_spec_run_with_null_backend_writes_layout_and_manifest(small_assets, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "task": "resnet50", "scenarios": ["Server"], "modes": ["performance"], "backend": "null",
        "dataset": str(small_assets.dataset), "profile": "smoke", "version": 1,
        "tuning": {"server_max_batch": 8, "server_target_qps": 1000},
    }))
    proc = harness("run", "--spec", str(spec), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "resnet50 Server performance: VALID" in proc.stdout
    run_dir = tmp_path / "out/resnet50/Server/performance/run_1"
    assert {"mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf.conf", "user.conf"} <= {
        p.name for p in run_dir.iterdir()}
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    (entry,) = manifest["runs"]
    assert entry["backend"] == "null" and entry["batch_size"] == 8 and entry["outcome"] == "ok"
    assert entry["synthetic"] is True  # the dataset carries the synthetic marker


def test_a_repeat_measures_beside_the_jobs_own_run(small_assets, tmp_path):
    """A nightly repeat (spec `repeat: k`) writes repeats/run_k and its own manifest entry; the
    job's performance/run_1 and its entry stay as they were."""
    out = tmp_path / "out"
    base = {"task": "resnet50", "scenarios": ["Offline"], "modes": ["performance"], "backend": "null",
            "dataset": str(small_assets.dataset), "profile": "smoke", "version": 1}
    for repeat in (0, 1, 2, 1):  # repeat 1 twice: a rerun replaces its own entry only
        spec = tmp_path / f"spec{repeat}.json"
        spec.write_text(json.dumps({**base, "repeat": repeat}))
        proc = harness("run", "--spec", str(spec), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    entries = json.loads((out / "manifest.json").read_text())["runs"]
    assert [(e["mode"], e.get("repeat"), e["dir"]) for e in entries] == [
        ("performance", None, "resnet50/Offline/performance/run_1"),
        ("performance", 1, "resnet50/Offline/repeats/run_1"),
        ("performance", 2, "resnet50/Offline/repeats/run_2"),
    ]
    assert all(e["result_validity"] == "VALID" and e["result"] > 0 for e in entries)
    for entry in entries:
        assert (out / entry["dir"] / "mlperf_log_summary.txt").is_file()
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({**base, "modes": ["performance", "accuracy"], "repeat": 1}))
    assert_one_line_error(harness("run", "--spec", str(spec), "--out", str(out)),
                          "repeat 1: a repeat (k >= 1) measures the performance mode only")


def test_facts_prints_host_json():
    proc = harness("facts")
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    for key in ("hostname", "cpu_model", "sockets", "cores_per_socket", "threads_per_core", "logical_cpus",
                "memory_bytes", "os", "kernel", "accelerators", "cpu_quota"):
        assert key in facts
    assert facts["logical_cpus"] >= 1


def test_importing_the_harness_stays_light():
    code = ("import sys, fleet.harness, fleet.harness.cli, fleet.harness.runner, fleet.harness.backends; "
            "heavy = [m for m in ('onnxruntime', 'onnx', 'cv2', 'mlperf_loadgen') if m in sys.modules]; "
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_harness_imports_nothing_else_from_fleet():
    import ast

    root = Path(__file__).resolve().parents[2] / "fleet" / "harness"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "fleet":
                    names = [f"fleet.{a.name}" for a in node.names if a.name != "__version__"]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if (n == "fleet" or n.startswith("fleet.")) and not n.startswith("fleet.harness")]
    assert offenders == []
