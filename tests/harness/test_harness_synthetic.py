"""Synthetic ResNet50 and ImageNet assets: official names/shapes, real format, diverse teacher labels."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fleet.harness import digest
from fleet.harness.accuracy import imagenet as imagenet_accuracy
from fleet.harness.errors import HarnessError
from fleet.harness.synthetic import MARKER, MAX_LABEL_COLLISION, imagenet, label_collision, synthesize
from fleet.harness.tasks.resnet50 import preprocess_image, read_val_map


def _io(model_path: Path) -> tuple[dict, dict, Counter]:
    import onnx

    model = onnx.load(str(model_path))

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    inputs = {i.name: (i.type.tensor_type.elem_type, shape(i)) for i in model.graph.input}
    outputs = {o.name: (o.type.tensor_type.elem_type, shape(o)) for o in model.graph.output}
    return inputs, outputs, Counter(n.op_type for n in model.graph.node)


@pytest.mark.parametrize("variant", ["full", "small"])
def test_model_has_official_io_and_resnet50_topology(variant, full_assets, small_assets):
    from onnx import TensorProto

    assets = full_assets if variant == "full" else small_assets
    inputs, outputs, ops = _io(assets.model)
    assert inputs == {"input_tensor:0": (TensorProto.FLOAT, ["N", 3, 224, 224])}
    assert outputs == {"ArgMax:0": (TensorProto.INT64, ["N"]),
                       "softmax_tensor:0": (TensorProto.FLOAT, ["N", 1001])}
    # 1 stem + 16 bottlenecks x 3 + 4 projection shortcuts; 16 residual adds; one classifier.
    assert ops["Conv"] == 53 and ops["Add"] == 16 and ops["MaxPool"] == 1 and ops["Gemm"] == 1


def test_full_and_small_differ_only_in_width(full_assets, small_assets):
    assert _io(full_assets.model)[2] == _io(small_assets.model)[2]
    assert full_assets.model.stat().st_size > 50 * small_assets.model.stat().st_size


def test_marker_records_seed_variant_and_digests(small_assets):
    marker = json.loads((small_assets.root / MARKER).read_text())
    assert marker["seed"] == 0 and marker["variant"] == "small" and marker["samples"] == 64
    assert marker["model"]["sha256"] == digest.file_sha256(small_assets.model)
    assert marker["label_collision"] <= MAX_LABEL_COLLISION


def test_dataset_is_imagenet_layout_with_varied_jpegs(small_assets):
    import cv2

    paths, labels = read_val_map(small_assets.dataset)
    assert len(paths) == 64
    assert all(p.startswith("val/ILSVRC2012_val_") and p.endswith(".JPEG") for p in paths)
    assert labels.min() >= 0 and labels.max() <= 999
    shapes = [cv2.imread(str(small_assets.dataset / p), cv2.IMREAD_UNCHANGED).shape for p in paths]
    assert any(len(s) == 2 for s in shapes), "no greyscale JPEG"
    assert any(len(s) == 3 and s[0] > s[1] for s in shapes), "no portrait JPEG"
    assert any(min(s[:2]) < 256 for s in shapes), "no image smaller than the 256 resize"
    assert len({s[:2] for s in shapes}) > 32


def test_labels_are_the_models_own_top1_and_diverse(small_assets):
    import onnxruntime as ort

    paths, labels = read_val_map(small_assets.dataset)
    batch = np.stack([preprocess_image(small_assets.dataset / p) for p in paths])
    sess = ort.InferenceSession(str(small_assets.model), providers=["CPUExecutionProvider"])
    for size in (1, 7, 64):  # labels hold at any batch size
        pred = np.concatenate([sess.run(["ArgMax:0"], {"input_tensor:0": batch[i : i + size]})[0]
                               for i in range(0, len(batch), size)])
        assert np.array_equal(pred - 1, labels)
    assert label_collision(labels.tolist()) <= MAX_LABEL_COLLISION


def test_same_seed_same_assets(tmp_path, small_assets):
    again = synthesize("resnet50", tmp_path / "again", 64, seed=0, variant="small")
    assert again["model"]["sha256"] == small_assets.marker["model"]["sha256"]
    assert again["dataset"]["sha256"] == small_assets.marker["dataset"]["sha256"]
    other = synthesize("resnet50", tmp_path / "other", 8, seed=1, variant="small")
    assert other["model"]["sha256"] != small_assets.marker["model"]["sha256"]


def test_refuses_a_dataset_without_diverse_labels(tmp_path):
    def one_class(batch: np.ndarray) -> np.ndarray:
        probs = np.full((len(batch), 1001), 1e-6, dtype=np.float32)
        probs[:, 7] = 1.0
        return probs

    with pytest.raises(HarnessError, match="share a label"):
        imagenet.make_dataset(tmp_path / "ds", 16, 0, one_class)


def test_shuffled_labels_collapse_accuracy(full_runs, full_assets, tmp_path):
    """The labels carry information: the same accuracy log scored against shuffled labels fails."""
    acc_log = full_runs["out"] / "resnet50/Offline/accuracy/mlperf_log_accuracy.json"
    val_map = full_assets.dataset / "val_map.txt"
    _, correct = imagenet_accuracy.evaluate(acc_log, val_map)
    lines = val_map.read_text().splitlines()
    labels = [line.split()[1] for line in lines]
    shuffled = np.random.default_rng(0).permutation(len(labels))
    bad = tmp_path / "val_map.txt"
    pairs = zip(lines, shuffled, strict=True)
    bad.write_text("".join(f"{line.split()[0]} {labels[j]}\n" for line, j in pairs))
    _, collapsed = imagenet_accuracy.evaluate(acc_log, bad)
    assert correct >= 99.0
    assert collapsed < 30.0


def test_unknown_synth_task_and_variant(tmp_path):
    with pytest.raises(HarnessError, match="no synthetic assets"):
        synthesize("gpt3-99", tmp_path, 4)
    with pytest.raises(HarnessError, match="unknown variant"):
        synthesize("resnet50", tmp_path, 4, variant="huge")
