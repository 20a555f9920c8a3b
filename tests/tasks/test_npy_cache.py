"""The preprocessed-sample cache shared by the image tasks (tasks/cache.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from fleet.harness.tasks.cache import NpyCache


def test_fill_makes_each_missing_file_once_in_the_task_layout(tmp_path: Path) -> None:
    cache = NpyCache(tmp_path / "v1", ["a/x.jpg", "b.jpg", "a/x.jpg", "c.jpg"])
    cache.store(3, np.full(2, 3.0))
    made: list[int] = []
    lock = threading.Lock()

    def preprocess(index: int) -> np.ndarray:
        with lock:
            made.append(index)
        return np.full(2, float(index))

    cache.fill(preprocess)
    assert sorted(made) == [1, 2]  # 0 and 2 share a file; 3 was cached
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "v1", "v1/a", "v1/a/x.jpg.npy", "v1/b.jpg.npy", "v1/c.jpg.npy",
    ]
    assert cache.load(0).tolist() == [2.0, 2.0] and cache.load(3).tolist() == [3.0, 3.0]
    cache.fill(lambda i: pytest.fail("everything is cached"))


def test_fill_raises_the_first_failure(tmp_path: Path) -> None:
    cache = NpyCache(tmp_path, ["a", "b"])

    def preprocess(index: int) -> np.ndarray:
        if index == 1:
            raise ValueError("cannot decode b")
        return np.zeros(1)

    with pytest.raises(ValueError, match="cannot decode b"):
        cache.fill(preprocess)
    assert cache.has(0) and not cache.has(1)


def test_resnet50_caches_under_version_and_layout(tmp_path: Path) -> None:
    import cv2

    from fleet.harness.tasks import get_task
    from fleet.harness.tasks.resnet50 import PREPROCESS_VERSION, preprocess_image

    data = tmp_path / "imagenet"
    (data / "val").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name in ("a.JPEG", "b.JPEG"):
        cv2.imwrite(str(data / "val" / name), rng.integers(0, 255, (300, 260, 3), dtype=np.uint8))
    (data / "val_map.txt").write_text("val/a.JPEG 3\nval/b.JPEG 7\n")
    task = get_task("resnet50")
    task.open(data, tmp_path / "cache")
    root = tmp_path / "cache" / PREPROCESS_VERSION / "NCHW" / "val"
    assert sorted(p.name for p in root.iterdir()) == ["a.JPEG.npy", "b.JPEG.npy"]
    expected = preprocess_image(data / "val" / "b.JPEG")
    np.testing.assert_array_equal(task.load_sample(1)["input_tensor:0"], expected)
