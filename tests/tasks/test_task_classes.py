"""The RetinaNet and BERT Task classes on their own (no LoadGen, no timing): dataset checks,
the QSL store path, payloads and accuracy, with onnxruntime as the backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fleet.harness.backends import BackendOptions, open_backend
from fleet.harness.errors import HarnessError
from fleet.harness.qsl import RunErrors, SampleStore
from fleet.harness.synthetic.bert import BertConfig, write_bert
from fleet.harness.synthetic.openimages import write_openimages
from fleet.harness.synthetic.retinanet import write_retinanet
from fleet.harness.synthetic.squad import build_vocab, write_squad
from fleet.harness.tasks import get_task, retinanet_io


@pytest.fixture(scope="module")
def retinanet_assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("rt-task")
    model = write_retinanet(base / "model.onnx")
    write_openimages(base / "openimages", model, num_images=5)
    return model, base / "openimages"


@pytest.fixture(scope="module")
def bert_assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("bert-task")
    model = write_bert(base / "model.onnx", BertConfig(vocab_size=len(build_vocab())))
    write_squad(base / "squad", model)
    return model, base / "squad"


def _log(task, backend, order: list[int]) -> list[dict]:
    """Run samples through store -> backend -> postprocess like the SUT, one sample per batch."""
    store = SampleStore(task, RunErrors())
    store.load(sorted(order))
    entries = []
    for n, index in enumerate(order):
        batch = np.array([index])
        payloads = task.postprocess(backend.run(store.feed(batch), 1), 1, indices=batch)
        data = payloads[0] if isinstance(payloads, list) else np.ascontiguousarray(payloads[0]).tobytes()
        entries.append({"seq_id": n, "qsl_idx": index, "data": data.hex()})
    return entries


def test_retinanet_task_checks_the_dataset(retinanet_assets: tuple[Path, Path], tmp_path: Path) -> None:
    _, root = retinanet_assets
    task = get_task("retinanet")
    files = task.dataset_files(root)
    assert files[0].name == "openimages-mlperf.json" and len(files) == 6
    task.open(root, tmp_path / "cache")
    assert task.total_sample_count == 5
    sample = task.load_sample(0)["images"]
    assert sample.shape == (3, 800, 800) and sample.dtype == np.float32
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    next((broken / "validation" / "data").iterdir()).unlink()
    with pytest.raises(HarnessError, match="missing"):
        get_task("retinanet").open(broken, tmp_path / "cache2")


def test_retinanet_task_payloads_carry_the_qsl_index(
    retinanet_assets: tuple[Path, Path], tmp_path: Path
) -> None:
    model, root = retinanet_assets
    task = get_task("retinanet")
    task.open(root, tmp_path / "cache")
    backend = open_backend("onnxruntime", model, task, BackendOptions(threads=1))
    order = [3, 0, 4, 1, 2]
    entries = _log(task, backend, order)
    for entry in entries:
        records = retinanet_io.decode_payload(bytes.fromhex(entry["data"]))
        assert set(records[:, 0].tolist()) <= {float(entry["qsl_idx"])}
    assert sum(1 for e in entries if e["data"] == "") == 1
    log = tmp_path / "log.json"
    log.write_text(json.dumps(entries))
    result = task.accuracy(log, root)
    assert result.value == pytest.approx(100.0) and result.text.endswith("mAP=100.000%\n")
    explicit = task.postprocess(
        backend.run(task.gather({"images": task.load_sample(2)["images"][None]}, np.array([0])), 1),
        1,
        indices=[7],
    )
    assert set(retinanet_io.decode_payload(explicit[0])[:, 0].tolist()) <= {7.0}
    backend.close()


def test_bert_tasks_share_the_dataset_and_score_it(bert_assets: tuple[Path, Path], tmp_path: Path) -> None:
    model, root = bert_assets
    task = get_task("bert-99")
    assert get_task("bert-99.9").rules_model == "bert-99.9"
    assert [p.name for p in task.dataset_files(root)] == ["dev-v1.1.json", "vocab.txt"]
    task.open(root, tmp_path / "cache")
    sample = task.load_sample(0)
    assert {k: (v.shape, v.dtype) for k, v in sample.items()} == {
        name: ((384,), np.dtype(np.int64)) for name in ("input_ids", "input_mask", "segment_ids")
    }
    backend = open_backend("onnxruntime", model, task, BackendOptions(threads=1))
    order = list(range(task.total_sample_count))[::-1]
    log = tmp_path / "log.json"
    log.write_text(json.dumps(_log(task, backend, order)))
    result = task.accuracy(log, root)
    assert result.value == 100.0 and result.text == '{"exact_match": 100.0, "f1": 100.0}\n'
    backend.close()


def test_bert_postprocess_interleaves_a_whole_batch() -> None:
    task = get_task("bert-99")
    start = np.arange(2 * 384, dtype=np.float32).reshape(2, 384)
    outputs = {"output_start_logits": start, "output_end_logits": -start}
    payloads = task.postprocess(outputs, 2, indices=[5, 9])
    assert payloads.shape == (2, 384, 2) and payloads.dtype == np.float32
    assert payloads[1, :2].tolist() == [[384.0, -384.0], [385.0, -385.0]]


def test_bert_task_refuses_a_dataset_without_vocab(bert_assets: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "squad").mkdir()
    shutil.copy(bert_assets[1] / "dev-v1.1.json", tmp_path / "squad")
    with pytest.raises(HarnessError, match="vocab"):
        get_task("bert-99").open(tmp_path / "squad", tmp_path / "cache")


def test_retinanet_cache_is_bounded_for_big_datasets(
    retinanet_assets: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.harness.tasks import retinanet

    monkeypatch.setattr(retinanet, "CACHE_BUDGET_IMAGES", 2)
    task = get_task("retinanet")
    task.open(retinanet_assets[1], tmp_path / "cache")  # 5 images > budget: nothing preprocessed yet
    cache = tmp_path / "cache" / retinanet.PREPROCESS_VERSION
    assert list(cache.iterdir()) == []
    first = [task.load_sample(i)["images"] for i in range(5)]
    assert len(list(cache.glob("*.npy"))) == 2  # the first two loaded stay cached, the rest do not
    again = [task.load_sample(i)["images"] for i in range(5)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
