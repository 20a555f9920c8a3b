"""Synthetic RetinaNet model + OpenImages-format dataset, made together (teacher-labelled)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fleet import __version__
from fleet.harness import digest
from fleet.harness.synthetic.openimages import write_openimages
from fleet.harness.synthetic.retinanet import RetinaNetConfig, build_retinanet
from fleet.harness.tasks.retinanet import RetinaNet

MODEL_FILE = "resnext50_32x4d_fpn.onnx"
DATASET_DIR = "openimages"
DEFAULT_SAMPLES = 8  # each preprocessed image is 7.7 MB in the cache and in the QSL
VARIANTS = ("full", "small")  # one size: the synthetic detector is already small


def make_retinanet_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    import onnx

    from fleet.harness.errors import HarnessError

    if variant not in VARIANTS:
        raise HarnessError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")
    samples = DEFAULT_SAMPLES if samples is None else samples
    if samples < 4:
        raise HarnessError("--samples must be at least 4 for retinanet (one flat and one grey image)")
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    tmp = model_path.with_name(f".{MODEL_FILE}.{os.getpid()}.tmp")
    onnx.save(build_retinanet(RetinaNetConfig(seed=seed)), str(tmp))
    os.replace(tmp, model_path)
    dataset = out / DATASET_DIR
    try:
        report = write_openimages(dataset, model_path, num_images=samples, seed=seed)
    except ValueError as exc:
        raise HarnessError(f"synthetic retinanet assets (seed {seed}): {exc}; try another --seed") from None
    return {
        "generator": "fleet.harness.synthetic",
        "fleet_version": __version__,
        "task": "retinanet",
        "seed": seed,
        "variant": variant,
        "samples": report.images,
        "detections": report.detections,
        "empty_images": report.empty_images,
        "distinct_labels": report.distinct_labels,
        "misordered_map": round(report.shifted_map, 4),
        "model": {"file": MODEL_FILE, "sha256": digest.file_sha256(model_path)},
        "dataset": {
            "dir": DATASET_DIR,
            "sha256": digest.tree_sha256(dataset, RetinaNet().dataset_files(dataset)),
        },
    }
