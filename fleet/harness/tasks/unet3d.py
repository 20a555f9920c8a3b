"""3D-UNet on the KiTS19 inference set: the `3d-unet-99` and `3d-unet-99.9` tasks.

Dataset: the reference's preprocessed layout (see kits19.py); preprocessing from raw CT is
untimed and done beforehand by the reference `preprocess.py`, so the QSL loads each case's
image as it is, one array per case (cases differ in size: a ragged sample input). The model
is the official ONNX export, one 128^3 window per call (input `input` [1,1,128,128,128],
output `output` [1,3,128,128,128] logits). One LoadGen sample is one whole case: `infer`
runs the reference's sliding window over it inside the timed path (unet3d_window.py), many
backend calls per sample, and the response is the case's uint8 labels (D x H x W bytes).
Accuracy is accuracy_kits.py's mean DICE (accuracy/kits.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.tasks import kits19
from fleet.harness.tasks.base import AccuracyResult, Indices, Task, TensorSpec, scoring
from fleet.harness.tasks.unet3d_window import CLASSES, ROI, SlidingWindow

INPUT_NAME = "input"
OUTPUT_NAME = "output"
IMAGE = "image"  # the QSL's per-case array
SEGMENTATION = "segmentation"  # infer's per-case labels


class UNet3D(Task):
    node_extras = ("kits19",)
    name = "3d-unet-99"
    rules_model = "3d-unet-99"
    max_batch_size = 1  # one case per inference; its windows run one by one
    inputs = (TensorSpec(INPUT_NAME, "float32", (1, ROI, ROI, ROI)),)
    outputs = (TensorSpec(OUTPUT_NAME, "float32", (CLASSES, ROI, ROI, ROI)),)
    response_dtype = "uint8"

    def __init__(self) -> None:
        self._dataset: Path | None = None
        self._cases: list[kits19.Case] = []
        self.window = SlidingWindow()

    @property
    def sample_inputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec(IMAGE, "float32", (1, None, None, None)),)

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        # Nothing to cache: the reference's preprocessed pickles are what the QSL loads.
        self._dataset = Path(dataset_dir)
        self._cases = kits19.list_cases(self._dataset)

    @property
    def total_sample_count(self) -> int:
        return len(self._cases)

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        dataset_dir = Path(dataset_dir)
        cases = kits19.list_cases(dataset_dir)
        return [kits19.index_path(dataset_dir),
                *(kits19.case_path(dataset_dir, c.name) for c in cases),
                *(kits19.segmentation_path(dataset_dir, c.name) for c in cases)]

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        assert self._dataset is not None, "open() first"
        return {IMAGE: kits19.load_case_image(self._dataset, self._cases[index])}

    def infer(self, backend: Any, feed: dict[str, Any], n: int) -> dict[str, Any]:
        """The reference's sliding window over each case of the batch: one backend call per window."""
        def run_window(window: np.ndarray) -> np.ndarray:
            return backend.run({INPUT_NAME: window}, 1)[OUTPUT_NAME]

        return {SEGMENTATION: [self.window.segment(image, run_window) for image in feed[IMAGE]]}

    def postprocess(self, outputs: dict[str, Any], n: int, *, indices: Indices) -> list[np.ndarray]:
        return list(outputs[SEGMENTATION])

    @property
    def infer_outputs(self) -> tuple[TensorSpec, ...]:
        """The labels of each case (uint8, flattened), stitched from the windows' outputs."""
        return (TensorSpec(SEGMENTATION, "uint8", (None,)),)

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        from fleet.harness.accuracy.kits import score_accuracy_log

        with scoring("3D-UNet", accuracy_log):
            result = score_accuracy_log(accuracy_log, dataset_dir)
        return AccuracyResult(result.text, result.mean)


class UNet3D999(UNet3D):
    """Same model and data; the 99.9% accuracy target (0.86170 x 0.999)."""

    name = "3d-unet-99.9"
    rules_model = "3d-unet-99.9"
