"""ResNet50-v1.5 on ImageNet: the `resnet50` task (submission model `resnet`).

Dataset: the ImageNet validation layout the reference reads, `DIR/val_map.txt` with lines
`<path relative to DIR> <label 0..999>` and the JPEGs it names. QSL index i is line i.
Preprocessing is the reference `pre_process_vgg` (profile resnet50-onnxruntime): cv2 decode
(BGR, 3 channels even for grey JPEGs) -> RGB, aspect-preserving INTER_AREA resize to short
side 256, center crop 224, float32 minus the RGB means [123.68, 116.78, 103.94], HWC->CHW.
Each image is preprocessed once into `<cache>/vgg-v1/NCHW/<path>.npy` (PREPROCESS_VERSION).
The model's `ArgMax:0` (1001 classes, 0 = background) minus one is the label; the response
is that label as one float32, as the reference harness sends it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fleet.harness.accuracy import imagenet
from fleet.harness.errors import HarnessError
from fleet.harness.tasks.base import AccuracyResult, Indices, Task, TensorSpec
from fleet.harness.tasks.cache import NpyCache

MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32)
OUT_SIZE = 224
RESIZE_SCALE = 87.5  # short side = int(100 * 224 / 87.5) = 256
VAL_MAP = "val_map.txt"
# Bump when the preprocessing changes so stale caches are not reused.
PREPROCESS_VERSION = "vgg-v1"


def preprocess_image(path: Path) -> np.ndarray:
    """The reference pre_process_vgg of one image file: float32 [3, 224, 224]."""
    import cv2

    img = cv2.imread(str(path))
    if img is None:
        raise HarnessError(f"cannot read image {path} (missing, empty or not an image)")
    return preprocess_bgr(img)


def preprocess_bgr(img: np.ndarray) -> np.ndarray:
    """pre_process_vgg of a decoded BGR uint8 image [H, W, 3]."""
    import cv2

    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    height, width = img.shape[:2]
    new_h = new_w = int(100.0 * OUT_SIZE / RESIZE_SCALE)
    if height > width:
        w, h = new_w, int(new_h * height / width)
    else:
        h, w = new_h, int(new_w * width / height)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    left, top = int((w - OUT_SIZE) / 2), int((h - OUT_SIZE) / 2)
    img = img[top : top + OUT_SIZE, left : left + OUT_SIZE]
    img = np.asarray(img, dtype=np.float32) - MEANS
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def read_val_map(dataset_dir: Path) -> tuple[list[str], np.ndarray]:
    """Relative image paths and integer labels, in val_map.txt order."""
    val_map = Path(dataset_dir) / VAL_MAP
    if not val_map.is_file():
        raise HarnessError(f"dataset {dataset_dir}: {VAL_MAP} not found (expected the ImageNet "
                           "validation layout: val_map.txt plus the JPEGs it lists)")
    paths: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(val_map.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            label = int(parts[1])
        except ValueError:
            raise HarnessError(f"{val_map}:{lineno}: expected '<image path> <label>', got {line!r}") from None
        paths.append(parts[0])
        labels.append(label)
    if not paths:
        raise HarnessError(f"{val_map} lists no images")
    return paths, np.asarray(labels, dtype=np.int64)


class ResNet50(Task):
    node_extras = ("vision",)
    name = "resnet50"
    rules_model = "resnet"
    max_batch_size = None
    inputs = (TensorSpec("input_tensor:0", "float32", (3, OUT_SIZE, OUT_SIZE)),)
    outputs = (TensorSpec("ArgMax:0", "int64", ()),)
    response_dtype = "float32"

    def __init__(self) -> None:
        self._paths: list[str] = []
        self._cache: NpyCache | None = None

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        dataset_dir = Path(dataset_dir)
        self._paths, _ = read_val_map(dataset_dir)
        sources = [dataset_dir / p for p in self._paths]
        for src in sources:
            if not src.is_file():
                raise HarnessError(f"dataset {dataset_dir}: image {src} listed in {VAL_MAP} does not exist")
        self._cache = NpyCache(Path(cache_dir) / PREPROCESS_VERSION / "NCHW", self._paths)
        self._cache.fill(lambda i: preprocess_image(sources[i]))

    @property
    def total_sample_count(self) -> int:
        return len(self._paths)

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        paths, _ = read_val_map(dataset_dir)
        return [Path(dataset_dir) / VAL_MAP, *(Path(dataset_dir) / p for p in paths)]

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        assert self._cache is not None, "open() first"
        return {"input_tensor:0": self._cache.load(index)}

    def postprocess(self, outputs: dict[str, np.ndarray], n: int, *, indices: Indices) -> np.ndarray:
        # ArgMax:0 over 1001 classes (0 = background) minus one = ImageNet label 0..999.
        return (outputs["ArgMax:0"].reshape(n) - 1).astype(np.float32)

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        text, value = imagenet.evaluate(accuracy_log, Path(dataset_dir) / VAL_MAP, self.response_dtype)
        return AccuracyResult(text, value)
