"""RetinaNet ResNeXt50-32x4d FPN on the OpenImages MLPerf subset: the `retinanet` task.

Dataset: `DIR/annotations/openimages-mlperf.json` (COCO format) and `DIR/validation/data/`
with the JPEGs it lists; QSL index i is `images[i]`. Preprocessing is the reference
`pre_process_openimages_retinanet` (RGB, float 800x800 bilinear, /255, CHW): 7.7 MB per image,
190 GB for the 24 781 validation images, so only up to CACHE_BUDGET_IMAGES preprocessed
images are kept in `<cache>/<version>/<file>.npy` (a small set is preprocessed at open; a big
one fills the cache as LoadGen loads samples, which caches the performance set, and decodes
the rest when asked: loading is outside LoadGen's timing). The model runs one image at a
time (the official export has no dynamic axes); its boxes/scores/labels become 7-float32 records
`[qsl_idx, ymin, xmin, ymax, xmax, score, label]` cut at the first score below 0.05, the
payload the reference harness sends (see retinanet_io.py). `qsl_idx` is the QSL index the
engine hands postprocess for each batch row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.tasks import openimages, retinanet_io
from fleet.harness.tasks.base import AccuracyResult, Indices, Task, TensorSpec, scoring
from fleet.harness.tasks.cache import NpyCache

# Bump when the preprocessing changes so stale caches are not reused.
PREPROCESS_VERSION = "openimages-retinanet-v1"
CACHE_BUDGET_IMAGES = 512  # 3.9 GB of preprocessed images per dataset


class RetinaNet(Task):
    node_extras = ("vision",)
    name = "retinanet"
    rules_model = "retinanet"
    max_batch_size = retinanet_io.MODEL_BATCH
    inputs = (
        TensorSpec(retinanet_io.INPUT_NAME, "float32", (3, openimages.INPUT_SIZE, openimages.INPUT_SIZE)),
    )
    # Per image, no batch axis in the model: the leading axis of each output is the detection.
    outputs = (
        TensorSpec("boxes", "float32", (4,)),
        TensorSpec("scores", "float32", ()),
        TensorSpec("labels", "int64", ()),
    )
    response_dtype = "float32"

    def __init__(self) -> None:
        self._images: list[openimages.OpenImage] = []
        self._cache: NpyCache | None = None
        self._cached_count = 0

    def _list(self, dataset_dir: Path) -> list[openimages.OpenImage]:
        try:
            return openimages.list_images(dataset_dir)
        except (OSError, ValueError, KeyError) as exc:
            raise HarnessError(f"dataset {dataset_dir}: {exc}") from None

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        self._images = self._list(Path(dataset_dir))
        self._cache = NpyCache(Path(cache_dir) / PREPROCESS_VERSION, [im.file_name for im in self._images])
        self._cache.root.mkdir(parents=True, exist_ok=True)
        if len(self._images) <= CACHE_BUDGET_IMAGES:
            self._cache.fill(self._preprocess)
        self._cached_count = sum(1 for p in self._cache.root.iterdir() if p.suffix == ".npy")

    def _preprocess(self, index: int) -> np.ndarray:
        image = self._images[index]
        try:
            return openimages.load_image(image.path)
        except ValueError as exc:
            raise HarnessError(f"dataset image {image.path}: {exc}") from None

    @property
    def total_sample_count(self) -> int:
        return len(self._images)

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        dataset_dir = Path(dataset_dir)
        try:
            data = openimages.read_annotations(dataset_dir)
        except (OSError, ValueError) as exc:
            raise HarnessError(f"dataset {dataset_dir}: {exc}") from None
        return [
            openimages.annotations_path(dataset_dir),
            *(dataset_dir / openimages.IMAGES_DIR / im["file_name"] for im in data["images"]),
        ]

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        cache = self._cache
        assert cache is not None, "open() first"
        if cache.has(index):
            image = cache.load(index)
        else:
            image = self._preprocess(index)
            if self._cached_count < CACHE_BUDGET_IMAGES:
                cache.store(index, image)
                self._cached_count += 1
        return {retinanet_io.INPUT_NAME: image}

    def postprocess(self, outputs: dict[str, np.ndarray], n: int, *, indices: Indices) -> list[bytes]:
        detections = retinanet_io.image_detections([outputs[name] for name in retinanet_io.OUTPUT_NAMES], n)
        pairs = zip(indices, detections, strict=True)
        return [retinanet_io.response_payload(int(qsl_idx), image) for qsl_idx, image in pairs]

    def null_outputs(self, n: int) -> dict[str, np.ndarray]:
        """No detection at all (the null backend measures the harness, not a model)."""
        return {
            "boxes": np.zeros((n, 0, 4), np.float32),
            "scores": np.zeros((n, 0), np.float32),
            "labels": np.zeros((n, 0), np.int64),
        }

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        from fleet.harness.accuracy.openimages import score_accuracy_log

        with scoring("RetinaNet", accuracy_log):
            result = score_accuracy_log(accuracy_log, dataset_dir)
        return AccuracyResult(result.text, result.map_percent)
