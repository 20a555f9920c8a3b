"""Synthetic ResNet50 model + ImageNet dataset, made together (the dataset is teacher-labelled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.synthetic import (
    asset_marker,
    check_variant,
    imagenet,
    label_collision,
    resnet50,
    write_atomic,
)
from fleet.harness.tasks.resnet50 import ResNet50

MODEL_FILE = "resnet50_v1.onnx"
DATASET_DIR = "imagenet"
CALIBRATION_IMAGES = 48


def _session(model: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


DEFAULT_SAMPLES = 64


def make_resnet50_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    check_variant(variant, resnet50.VARIANTS)
    samples = samples or DEFAULT_SAMPLES
    calib = imagenet.calibration_batch(seed, CALIBRATION_IMAGES)

    def features_of(backbone: bytes) -> np.ndarray:
        sess = _session(backbone)
        return np.concatenate([sess.run(None, {resnet50.INPUT_NAME: calib[i : i + 16]})[0]
                               for i in range(0, len(calib), 16)])

    model = resnet50.build(seed, variant, features_of)
    model_path = out / MODEL_FILE
    write_atomic(model_path, model)

    sess = _session(model)

    def predict(batch: np.ndarray) -> np.ndarray:
        return sess.run([resnet50.SOFTMAX_NAME], {resnet50.INPUT_NAME: batch})[0]

    dataset = out / DATASET_DIR
    labels = imagenet.make_dataset(dataset, samples, seed, predict)
    return asset_marker("resnet50", seed, variant, model_path, dataset, ResNet50().dataset_files(dataset),
                        samples=samples, distinct_labels=len(set(labels.tolist())),
                        label_collision=round(label_collision(labels.tolist()), 5))
