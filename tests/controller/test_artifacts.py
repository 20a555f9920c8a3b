"""The controller's artifact store: names from the marker, checksummed tar, built once."""

from __future__ import annotations

import json
import tarfile

import pytest

from fleet.artifacts import stage_task
from fleet.errors import ArtifactError


def store_with(tmp_path, marker: dict | None = None):
    task = tmp_path / "store" / "resnet50"
    (task / "imagenet").mkdir(parents=True)
    (task / "resnet50_v1.onnx").write_bytes(b"model")
    (task / "imagenet" / "val_map.txt").write_text("a.JPEG 1\n")
    (task / "imagenet" / "a.JPEG").write_bytes(b"jpeg")
    if marker is not None:
        (task / "fleet_assets.json").write_text(json.dumps(marker))
    return tmp_path / "store"


def test_stage_task_builds_a_checksummed_tar_once(tmp_path):
    store = store_with(tmp_path)
    first = stage_task(store, "resnet50", tmp_path / "cache")
    assert (first.model, first.dataset) == ("resnet50_v1.onnx", "imagenet")
    with tarfile.open(first.tar) as tf:
        names = set(tf.getnames())
        sums = tf.extractfile("SHA256SUMS").read().decode()
    assert names == {"SHA256SUMS", "resnet50_v1.onnx", "imagenet/val_map.txt", "imagenet/a.JPEG"}
    assert "resnet50_v1.onnx" in sums and len(sums.splitlines()) == 3
    mtime = first.tar.stat().st_mtime_ns
    again = stage_task(store, "resnet50", tmp_path / "cache")
    assert again == first and again.tar.stat().st_mtime_ns == mtime
    (store / "resnet50" / "imagenet" / "a.JPEG").write_bytes(b"other jpeg")
    changed = stage_task(store, "resnet50", tmp_path / "cache")
    assert changed.key != first.key


def test_marker_names_model_and_dataset(tmp_path):
    store = store_with(tmp_path, {"model": {"file": "resnet50_v1.onnx"}, "dataset": {"dir": "imagenet"}})
    assert stage_task(store, "resnet50", tmp_path / "c").dataset == "imagenet"


@pytest.mark.parametrize(
    "task, marker, message",
    [
        ("retinanet", None, "has no retinanet/ directory"),
        ("resnet50", {"model": {"file": "x.onnx"}, "dataset": {"dir": "imagenet"}}, "x.onnx is missing"),
        ("resnet50", {"model": {}}, "does not name model.file"),
    ],
)
def test_bad_store(tmp_path, task, marker, message):
    store = store_with(tmp_path, marker)
    with pytest.raises(ArtifactError, match=message):
        stage_task(store, task, tmp_path / "cache")
