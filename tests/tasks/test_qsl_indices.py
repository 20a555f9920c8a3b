"""The engine hands each batch row's QSL index to the task: RetinaNet's payload records carry
it, and two byte-identical images at different QSL indices keep their own (no LoadGen: a
fake one collects the completed payloads)."""

from __future__ import annotations

import ctypes
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fleet.harness.backends import run_anywhere
from fleet.harness.qsl import RunErrors, SampleStore
from fleet.harness.sut import Engine
from fleet.harness.tasks import get_task, retinanet_io, task_names

SCORE = 0.9


class FakeLoadGen:
    """QuerySampleResponse/QuerySamplesComplete that copy each payload out, as LoadGen does."""

    def __init__(self) -> None:
        self.payloads: dict[int, bytes] = {}

    @staticmethod
    def QuerySampleResponse(qid: int, ptr: int, size: int) -> tuple[int, int, int]:
        return qid, ptr, size

    def QuerySamplesComplete(self, responses: list[tuple[int, int, int]]) -> None:
        for qid, ptr, size in responses:
            self.payloads[qid] = ctypes.string_at(ptr, size)


class OneBoxBackend:
    """One detection per image, the same for every image; batched outputs when `batched`."""

    needs_feed = True

    def __init__(self, batched: bool) -> None:
        self.batched = batched

    pinned = staticmethod(run_anywhere)

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        assert len(feed[retinanet_io.INPUT_NAME]) == n
        boxes = np.array([[80.0, 160.0, 400.0, 800.0]], np.float32)
        scores = np.array([SCORE], np.float32)
        labels = np.array([3], np.int64)
        one = {"boxes": boxes, "scores": scores, "labels": labels}
        return {k: np.stack([v] * n) for k, v in one.items()} if self.batched else one


@pytest.fixture(scope="module")
def twin_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images; images 0 and 2 are the same bytes under two file names."""
    import cv2

    root = tmp_path_factory.mktemp("twins")
    data = root / "validation" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(data / name), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    shutil.copy(data / "a.jpg", data / "c.jpg")
    images = [{"id": i + 1, "file_name": name, "height": 48, "width": 64}
              for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg"))]
    (root / "annotations").mkdir()
    (root / "annotations" / "openimages-mlperf.json").write_text(
        json.dumps({"images": images, "annotations": [], "categories": []})
    )
    return root


def _run(dataset: Path, cache: Path, batches: list[list[int]], batched: bool) -> dict[int, np.ndarray]:
    """Each batch of QSL indices through Engine.process; qid -> decoded records."""
    task = get_task("retinanet")
    task.open(dataset, cache)
    errors = RunErrors()
    store = SampleStore(task, errors)
    store.load(sorted({i for batch in batches for i in batch}))
    lg = FakeLoadGen()
    engine = Engine(task, OneBoxBackend(batched), store, errors, lg)
    qid = 0
    for batch in batches:
        ids = list(range(qid, qid + len(batch)))
        qid += len(batch)
        engine.process(ids, np.asarray(batch, dtype=np.int64))
    assert errors.summary() is None
    return {q: retinanet_io.decode_payload(data) for q, data in lg.payloads.items()}


def test_identical_images_keep_their_own_qsl_index(twin_dataset: Path, tmp_path: Path) -> None:
    task = get_task("retinanet")
    task.open(twin_dataset, tmp_path / "cache")
    np.testing.assert_array_equal(task.load_sample(0)["images"], task.load_sample(2)["images"])
    records = _run(twin_dataset, tmp_path / "cache", [[0], [2], [1], [2], [0]], batched=False)
    assert {q: r[:, 0].tolist() for q, r in records.items()} == {
        0: [0.0], 1: [2.0], 2: [1.0], 3: [2.0], 4: [0.0]
    }
    assert all(r[0, 5] == pytest.approx(SCORE) for r in records.values())


def test_retinanet_batches_map_every_row_to_its_index(twin_dataset: Path, tmp_path: Path) -> None:
    records = _run(twin_dataset, tmp_path / "cache", [[2, 0, 1], [0, 2]], batched=True)
    assert [records[q][:, 0].tolist() for q in range(5)] == [[2.0], [0.0], [1.0], [0.0], [2.0]]


def test_retinanet_refuses_unbatched_outputs_for_several_images() -> None:
    outputs = OneBoxBackend(batched=False).run({"images": np.zeros((2, 3, 8, 8), np.float32)}, 2)
    with pytest.raises(ValueError, match="batch of 2"):
        get_task("retinanet").postprocess(outputs, 2, indices=[0, 1])


@pytest.mark.parametrize("name", task_names())
def test_every_task_takes_the_indices(name: str) -> None:
    """A required keyword: a task whose postprocess has no `indices` fails on every batch."""
    param = inspect.signature(type(get_task(name)).postprocess).parameters["indices"]
    assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty
