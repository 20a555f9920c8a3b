"""The OpenImages MLPerf validation subset on disk, and RetinaNet's image preprocessing.

Layout (what `tools/openimages_mlperf.sh` produces): `ROOT/validation/data/<ImageID>.jpg` and
`ROOT/annotations/openimages-mlperf.json` (COCO format). QSL index i is `images[i]` of the json,
which is what the accuracy script assumes, so a listed image that is missing is an error here
(the reference silently drops it, which shifts every later index). cv2 is imported where it
is used, so listing a dataset works without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.jsonfile import read_listing

IMAGES_DIR = "validation/data"
ANNOTATIONS_FILE = "annotations/openimages-mlperf.json"
INPUT_SIZE = 800  # RetinaNet's fixed input: 800x800, no aspect preservation


@dataclass(frozen=True)
class OpenImage:
    """One listed image: its COCO id, file and original size (the accuracy script rescales to it)."""

    image_id: int
    file_name: str
    height: int
    width: int
    path: Path


def annotations_path(root: Path) -> Path:
    return Path(root) / ANNOTATIONS_FILE


def read_annotations(root: Path) -> dict[str, Any]:
    return read_listing(annotations_path(root), "OpenImages annotations", "images",
                        f"ROOT/{ANNOTATIONS_FILE}", "COCO")


def list_images(root: Path, annotations: dict[str, Any] | None = None) -> list[OpenImage]:
    """The dataset in QSL order; fails if any listed image file is missing."""
    root = Path(root)
    data = annotations if annotations is not None else read_annotations(root)
    images = []
    missing = []
    for entry in data["images"]:
        path = root / IMAGES_DIR / entry["file_name"]
        if not path.is_file():
            missing.append(entry["file_name"])
        images.append(
            OpenImage(int(entry["id"]), entry["file_name"], int(entry["height"]), int(entry["width"]), path)
        )
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {ANNOTATIONS_FILE} are missing under {root / IMAGES_DIR} "
            f"(first: {missing[0]}); QSL indices would shift, refusing to run"
        )
    if not images:
        raise ValueError(f"{annotations_path(root)} lists no images")
    return images


def preprocess(bgr: np.ndarray) -> np.ndarray:
    """`pre_process_openimages_retinanet`: float32, RGB, 800x800 bilinear, /255, CHW.

    The resize runs on float32 pixels as the reference does (resizing uint8 would round).
    Mean/std normalisation is inside the model graph, not here.
    """
    import cv2

    img = np.asarray(bgr, dtype=np.float32)
    if img.ndim < 3 or img.shape[2] != 3:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        # The reference then applies BGR->RGB once more; on grey pixels that is a no-op.
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    img /= 255.0
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def load_image(path: Path) -> np.ndarray:
    """Read one JPEG and preprocess it: [3, 800, 800] float32."""
    import cv2

    bgr = cv2.imread(str(path))
    if bgr is None:
        raise ValueError(f"cannot decode image {path}")
    return preprocess(bgr)
