"""RetinaNet pieces without the harness: synthetic model + OpenImages set, preprocessing,
payload records and the mAP script, driven with onnxruntime directly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from taskhelpers import cpu_session, log_entries

from fleet.harness.accuracy.openimages import score_accuracy_log, score_entries
from fleet.harness.rules.v3_1 import MODELS
from fleet.harness.synthetic.openimages import MLPERF_CLASSES, check_diversity, write_openimages
from fleet.harness.synthetic.retinanet import build_retinanet, write_retinanet
from fleet.harness.tasks import openimages, retinanet_io


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("retinanet")
    model = write_retinanet(base / "retinanet.onnx")
    write_openimages(base / "openimages", model)
    return model, base / "openimages"


@pytest.fixture(scope="module")
def session(assets: tuple[Path, Path]) -> ort.InferenceSession:
    return cpu_session(assets[0])


def run_images(session: ort.InferenceSession, root: Path, load=openimages.load_image) -> list[bytes]:
    """What a correct harness sends LoadGen, image by image in QSL order."""
    payloads = []
    for idx, image in enumerate(openimages.list_images(root)):
        outputs = session.run(list(retinanet_io.OUTPUT_NAMES), retinanet_io.make_feed(load(image.path)))
        payloads.append(retinanet_io.response_payload(idx, outputs))
    return payloads


def test_dataset_has_the_official_layout(assets: tuple[Path, Path]) -> None:
    _, root = assets
    data = json.loads((root / "annotations" / "openimages-mlperf.json").read_text())
    assert [c["id"] for c in data["categories"]] == list(range(264))
    assert [c["name"] for c in data["categories"]] == list(MLPERF_CLASSES)
    assert [im["id"] for im in data["images"]] == list(range(1, len(data["images"]) + 1))
    names = [im["file_name"] for im in data["images"]]
    assert names == sorted(names)
    assert all(re.fullmatch(r"[0-9a-f]{16}\.jpg", n) for n in names)
    for image in openimages.list_images(root):
        pixels = cv2.imread(str(image.path), cv2.IMREAD_UNCHANGED)
        assert pixels.shape[:2] == (image.height, image.width)
    assert {im.height for im in openimages.list_images(root)} != {800}
    grey = [n for n in names if cv2.imread(str(root / "validation/data" / n), cv2.IMREAD_UNCHANGED).ndim == 2]
    assert len(grey) == 1
    annotated = {a["image_id"] for a in data["annotations"]}
    assert len(annotated) == len(names) - 1  # exactly one image without any detection
    for ann in data["annotations"]:
        _, _, w, h = ann["bbox"]
        assert ann["iscrowd"] == 0 and ann["area"] == pytest.approx(w * h) and w > 0 and h > 0


def test_missing_image_is_an_error_not_an_index_shift(assets: tuple[Path, Path], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(assets[1], root)
    victim = sorted((root / "validation" / "data").iterdir())[2]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=victim.name):
        openimages.list_images(root)


def test_preprocess_matches_the_reference_recipe() -> None:
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = openimages.preprocess(bgr)
    assert out.shape == (3, 800, 800) and out.dtype == np.float32 and out.flags.c_contiguous
    expected = (
        cv2.resize(bgr[:, :, ::-1].astype(np.float32), (800, 800), interpolation=cv2.INTER_LINEAR) / 255
    )
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), rtol=0, atol=1e-6)
    assert out[0, 0, 0] == pytest.approx(bgr[0, 0, 2] / 255, abs=1e-6)  # channel 0 is red
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    np.testing.assert_array_equal(
        openimages.preprocess(grey), openimages.preprocess(np.repeat(grey[:, :, None], 3, axis=2))
    )


def test_model_has_the_official_contract(assets: tuple[Path, Path], session: ort.InferenceSession) -> None:
    model = onnx.load(str(assets[0]))
    ops = {n.op_type for n in model.graph.node}
    assert {"NonMaxSuppression", "TopK", "Gather", "Sigmoid"} <= ops
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == ("images", "tensor(float)", [1, 3, 800, 800])
    outs = {o.name: o.type for o in session.get_outputs()}
    assert outs == {"boxes": "tensor(float)", "scores": "tensor(float)", "labels": "tensor(int64)"}
    flat = session.run(None, {"images": np.full((1, 3, 800, 800), 0.4, np.float32)})
    assert [o.shape for o in flat] == [(0, 4), (0,), (0,)]
    boxes, scores, labels = session.run(
        None, retinanet_io.make_feed(openimages.load_image(openimages.list_images(assets[1])[0].path))
    )
    assert 0 < len(scores) <= 300 and boxes.shape == (len(scores), 4)
    assert np.all(np.diff(scores) <= 0) and scores.min() > 0.05
    assert labels.min() >= 0 and labels.max() < 264
    assert boxes.min() >= 0 and boxes.max() <= 800
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])


def test_model_is_deterministic_per_seed() -> None:
    assert build_retinanet().SerializeToString() == build_retinanet().SerializeToString()


def test_records_reorder_normalise_and_stop_at_the_first_low_score() -> None:
    boxes = np.array([[80, 160, 400, 720], [0, 0, 800, 800], [8, 8, 16, 16]], np.float32)
    scores = np.array([0.9, 0.04, 0.5], np.float32)  # 0.5 after a low score is never sent
    labels = np.array([7, 3, 263], np.int64)
    records = retinanet_io.detection_records(5, (boxes, scores, labels))
    np.testing.assert_allclose(records, [[5, 0.2, 0.1, 0.9, 0.5, 0.9, 7]], rtol=1e-6)
    payload = retinanet_io.response_payload(5, (boxes, scores, labels))
    assert len(payload) == 7 * 4
    np.testing.assert_array_equal(np.frombuffer(payload, np.float32), records.ravel())
    empty = retinanet_io.response_payload(
        1, (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    )
    assert empty == b""
    assert retinanet_io.decode_payload(empty).shape == (0, 7)


def test_correct_order_scores_the_teacher_map(
    assets: tuple[Path, Path], session: ort.InferenceSession, tmp_path: Path
) -> None:
    payloads = run_images(session, assets[1])
    assert sum(1 for p in payloads if p == b"") == 1
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(log_entries(payloads)))
    result = score_accuracy_log(log, assets[1])
    assert result.map_percent == pytest.approx(100.0)
    assert result.no_results == 1 and result.index_mismatches == 0 and result.images == len(payloads)
    last = result.text.rstrip("\n").splitlines()[-1]
    assert last == "mAP=100.000%"
    metric = MODELS["retinanet"].accuracy[0]
    assert float(re.match(metric.pattern, last).group(1)) == pytest.approx(100.0)


def test_misordered_or_misdecoded_detections_lose_the_map(
    assets: tuple[Path, Path], session: ort.InferenceSession
) -> None:
    root = assets[1]
    annotations = openimages.read_annotations(root)
    payloads = run_images(session, root)
    n = len(payloads)
    shifted = score_entries(log_entries(payloads, [(i + 1) % n for i in range(n)]), annotations)
    assert shifted.map_percent < 50.0
    assert shifted.index_mismatches > 0  # and the script says so

    def xy_not_swapped(p: bytes) -> bytes:
        r = retinanet_io.decode_payload(p).copy()
        r[:, 1:5] = r[:, [2, 1, 4, 3]]
        return retinanet_io.encode_payload(r)

    assert score_entries(log_entries([xy_not_swapped(p) for p in payloads]), annotations).map_percent < 50.0

    def bgr_input(path: Path) -> np.ndarray:
        return openimages.load_image(path)[::-1].copy()

    assert score_entries(log_entries(run_images(session, root, bgr_input)), annotations).map_percent < 50.0


def test_duplicates_are_ignored_and_subsets_scored_on_their_images(
    assets: tuple[Path, Path], session: ort.InferenceSession
) -> None:
    annotations = openimages.read_annotations(assets[1])
    payloads = run_images(session, assets[1])
    entries = log_entries(payloads)
    doubled = score_entries([*entries, {**entries[0], "data": payloads[1].hex()}], annotations)
    assert doubled.map_percent == pytest.approx(100.0)
    subset = score_entries(entries[:3], annotations)
    assert subset.images == 3 and subset.map_percent == pytest.approx(100.0)


def test_generator_is_deterministic(assets: tuple[Path, Path], tmp_path: Path) -> None:
    write_openimages(tmp_path / "again", assets[0])
    again = (tmp_path / "again" / openimages.ANNOTATIONS_FILE).read_bytes()
    assert again == (assets[1] / openimages.ANNOTATIONS_FILE).read_bytes()


def test_generator_refuses_labels_that_cannot_catch_misordering() -> None:
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "height": 100, "width": 100} for i in range(4)]
    same = [
        {"image_id": 0, "category_id": c, "bbox": [10.0, 10.0, 30.0, 30.0], "score": 0.9} for c in range(9)
    ]
    per_image = [[{**d, "image_id": im["id"]} for d in same] for im in images[:3]] + [[]]
    anns = [
        {
            "id": k + 1,
            "image_id": d["image_id"],
            "category_id": d["category_id"],
            "bbox": d["bbox"],
            "area": 900.0,
            "iscrowd": 0,
        }
        for k, d in enumerate(d for dets in per_image for d in dets)
    ]
    coco = {"images": images, "annotations": anns, "categories": [{"id": i} for i in range(264)]}
    with pytest.raises(ValueError, match="degenerate"):
        check_diversity(coco, per_image)
