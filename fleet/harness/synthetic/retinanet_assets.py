"""Synthetic RetinaNet model + OpenImages-format dataset, made together (teacher-labelled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.harness.synthetic import asset_marker, check_variant, sample_count, seed_must_label, write_atomic
from fleet.harness.synthetic.openimages import write_openimages
from fleet.harness.synthetic.retinanet import RetinaNetConfig, build_retinanet
from fleet.harness.tasks.retinanet import RetinaNet

MODEL_FILE = "resnext50_32x4d_fpn.onnx"
DATASET_DIR = "openimages"
DEFAULT_SAMPLES = 8  # each preprocessed image is 7.7 MB in the cache and in the QSL
VARIANTS = ("full", "small")  # one size: the synthetic detector is already small


def make_retinanet_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:

    check_variant(variant, VARIANTS)
    samples = sample_count("retinanet", samples, DEFAULT_SAMPLES, 4, "one flat and one grey image")
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    write_atomic(model_path, build_retinanet(RetinaNetConfig(seed=seed)).SerializeToString())
    dataset = out / DATASET_DIR
    with seed_must_label("retinanet", seed):
        report = write_openimages(dataset, model_path, num_images=samples, seed=seed)
    return asset_marker(
        "retinanet", seed, variant, model_path, dataset, RetinaNet().dataset_files(dataset),
        samples=report.images,
        detections=report.detections,
        empty_images=report.empty_images,
        distinct_labels=report.distinct_labels,
        misordered_map=round(report.shifted_map, 4),
    )
