"""Synthetic datasets at the submission profile's sizes (the rules' performance sample counts).

The diversity rule must hold at any size and still let the tests fail: at ResNet50's 1024
samples a shuffled sample order and a wrong preprocessing must score clearly below a correct
harness, and every generator must reach the size it is asked for.
"""

from __future__ import annotations

import numpy as np
import pytest

from fleet.harness.rules import v3_1 as rules
from fleet.harness.synthetic import MAX_LABEL_COLLISION, label_collision, synthesize
from fleet.harness.tasks.resnet50 import preprocess_image, read_val_map


def test_label_collision_is_the_chance_two_samples_agree():
    assert label_collision([1, 2, 3, 4]) == 0.0
    assert label_collision([7] * 10) == 1.0
    assert label_collision([1, 1, 2, 2]) == pytest.approx(2 * 2 / (4 * 3))
    assert label_collision([5]) == 0.0


def test_resnet50_at_submission_size_is_diverse_and_catches_bugs(asset_shelf):
    need = rules.model_for_task("resnet50").performance_sample_count
    assets = asset_shelf.get("resnet50", need, "small")
    assert assets.marker["samples"] == need == 1024
    assert assets.marker["label_collision"] <= MAX_LABEL_COLLISION
    paths, labels = read_val_map(assets.dataset)
    assert len(paths) == need and label_collision(labels.tolist()) <= MAX_LABEL_COLLISION

    import onnxruntime as ort

    sess = ort.InferenceSession(str(assets.model), providers=["CPUExecutionProvider"])
    right, swapped = [], []
    for first in range(0, need, 64):
        batch = np.stack([preprocess_image(assets.dataset / p) for p in paths[first : first + 64]])
        right.append(sess.run(["ArgMax:0"], {"input_tensor:0": batch})[0] - 1)
        bgr = np.ascontiguousarray(batch[:, ::-1])  # a preprocessing that swaps the colour channels
        swapped.append(sess.run(["ArgMax:0"], {"input_tensor:0": bgr})[0] - 1)
    assert np.mean(np.concatenate(right) == labels) == 1.0
    assert np.mean(np.concatenate(swapped) == labels) < 0.3
    shuffled = labels[np.random.default_rng(0).permutation(need)]
    assert np.mean(shuffled == labels) < 0.05
    shifted = np.roll(labels, 1)  # responses one sample off
    assert np.mean(shifted == labels) < 0.05


def test_retinanet_at_submission_size(tmp_path):
    need = rules.model_for_task("retinanet").performance_sample_count
    marker = synthesize("retinanet", tmp_path, need)
    assert marker["samples"] == need == 64
    assert marker["misordered_map"] < 0.5 and marker["distinct_labels"] >= 8


def test_bert_reaches_the_feature_count_asked_for(tmp_path):
    marker = synthesize("bert-99", tmp_path, 60)
    assert marker["samples"] >= 60  # QSL samples are features, not drafted questions
    assert marker["misordered_f1"] < 50.0 and marker["distinct_answers"] == marker["questions"]


def _disk_mb(root) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


# What the synthetic sets take on a controller's disk at the submission profile's size (the
# asset cache holds them once per variant and seed): a generator that starts writing float64
# volumes or uncompressed duplicates shows here first.
RNNT_MAX_MB = 250  # 163 MB measured (seed 0, small)
UNET3D_MAX_MB = 1100  # 712 MB measured (seed 0, small)


def test_rnnt_at_submission_size_is_diverse(tmp_path):
    from fleet.harness.synthetic.rnnt_assets import DATASET_DIR
    from fleet.harness.tasks.librispeech import read_manifest

    need = rules.model_for_task("rnnt").performance_sample_count
    marker = synthesize("rnnt", tmp_path, need, variant="small")
    assert marker["samples"] == need == 2513
    transcripts = [u.transcript for u in read_manifest(tmp_path / DATASET_DIR)]
    assert len(transcripts) == need  # the entry over 15 s is filtered out, as in dev-clean
    # Responses one utterance off (or shuffled) lose most words, and the set does not collapse
    # into a few repeated transcripts at this size.
    assert marker["shuffled_accuracy"] < 50.0
    assert len(set(transcripts)) >= 0.9 * need
    assert len(set(marker["word_counts"])) >= 3
    assert _disk_mb(tmp_path) < RNNT_MAX_MB


def test_unet3d_at_submission_size_tells_broken_harnesses_apart(tmp_path):
    need = rules.model_for_task("3d-unet-99").performance_sample_count
    marker = synthesize("3d-unet-99", tmp_path, need, variant="small")
    assert marker["samples"] == need == 43
    assert marker["windows_per_pass"] == 2 * need  # every case is two overlapping windows
    assert marker["flipped_dice"] < 0.7 and marker["shuffled_dice"] < 0.7
    assert marker["kidney_share"] >= 0.01 and marker["tumor_share"] >= 0.01
    assert _disk_mb(tmp_path) < UNET3D_MAX_MB
