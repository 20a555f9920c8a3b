"""Synthetic 3D-UNet model + KiTS19-format cases, made together (teacher-labelled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.synthetic import asset_marker, check_variant, sample_count, seed_must_label, write_atomic
from fleet.harness.synthetic.kits19 import synthetic_image, write_kits19
from fleet.harness.synthetic.unet3d import ROI, UNet3DConfig, build_unet3d, fit_head
from fleet.harness.tasks.unet3d import UNet3D

MODEL_FILE = "3dunet_kits19_128x128x128.onnx"
DATASET_DIR = "kits19"
DEFAULT_SAMPLES = 4  # 8 windows a pass: each case is two overlapping windows
MIN_SAMPLES = 3  # two cases of one size, so a shuffled order can be scored
# Filters per level: one window takes ~0.4 s (full) or ~0.2 s (small) on two cores.
FILTERS = {"full": (4, 8, 8, 8, 8), "small": (2, 4, 4, 4, 4)}
VARIANTS = tuple(FILTERS)


def make_model(path: Path, seed: int, variant: str) -> None:
    """Build the network, then fit its output head so each class covers a useful share."""
    import onnxruntime as ort

    config = UNet3DConfig(filters=FILTERS[variant], seed=seed)
    probe_model = build_unet3d(config)  # outputs the last block's features
    session = ort.InferenceSession(probe_model.SerializeToString(), providers=["CPUExecutionProvider"])
    probe = synthetic_image((ROI, ROI, ROI), np.random.default_rng(seed + 7))
    features = session.run(["output"], {"input": probe[np.newaxis]})[0][0]
    write_atomic(path, build_unet3d(config, fit_head(features)).SerializeToString())


def make_unet3d_assets(out: Path, samples: int | None, seed: int, variant: str,
                       task: str = "3d-unet-99") -> dict[str, Any]:

    check_variant(variant, VARIANTS)
    samples = sample_count(task, samples, DEFAULT_SAMPLES, MIN_SAMPLES,
                           "two cases of one size, so a shuffled order can be scored")
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    make_model(model_path, seed, variant)
    dataset = out / DATASET_DIR
    with seed_must_label(task, seed):
        report = write_kits19(dataset, model_path, samples, seed)
    return asset_marker(
        task, seed, variant, model_path, dataset, UNet3D().dataset_files(dataset),
        samples=report.cases,
        windows_per_pass=report.windows,
        kidney_share=round(report.kidney_share, 4),
        tumor_share=round(report.tumor_share, 4),
        flipped_dice=round(report.flipped_dice, 4),
        shuffled_dice=round(report.shuffled_dice, 4),
    )


def make_unet3d_999_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_unet3d_assets(out, samples, seed, variant, task="3d-unet-99.9")
