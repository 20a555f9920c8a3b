"""A teacher-labelled ImageNet-format dataset for the synthetic ResNet50.

JPEGs of varied sizes (landscape, portrait, small ones that upscale, square) and colour
modes (every few images is greyscale), drawn from smooth random fields plus shapes and
noise, and a `val_map.txt` in the reference layout. Each label is what the fp32 synthetic
model predicts (ArgMax minus one) for the JPEG *as written*, decoded and preprocessed by the
harness's own reference preprocessing, so a correct harness scores ~100% and any bug in
decoding, preprocessing, sample order or post-processing loses accuracy.

Labels are made robust and diverse: an image whose top-1 margin is too thin to survive
float noise across batch sizes (or whose top class is the background index) is redrawn, and
a dataset whose labels collide too often (two random samples share a label with a chance
above MAX_LABEL_COLLISION) is refused, because then a shuffled sample order could still score
well and a test could not fail. That bound holds at any size, 1024 samples included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.synthetic import MAX_LABEL_COLLISION, label_collision
from fleet.harness.tasks.resnet50 import VAL_MAP, preprocess_bgr, preprocess_image

# log(p1) - log(p2) below this is redrawn: ~1000x the float noise between batch sizes.
MIN_MARGIN = 0.05
MAX_REDRAWS = 50
LABEL_BATCH = 16


def draw_image(rng: np.random.Generator, index: int) -> np.ndarray:
    """One synthetic photo-like image, uint8 HxWx3 (BGR) or HxW (greyscale)."""
    import cv2

    kind = index % 6
    if kind == 1:  # portrait
        w = int(rng.integers(200, 380))
        h = int(rng.integers(w + 20, w * 2))
    elif kind == 3:  # small: short side below 256, upscaled by the preprocessing
        h = int(rng.integers(120, 250))
        w = int(rng.integers(h, h + 120))
    elif kind == 5:  # square
        h = w = int(rng.integers(230, 420))
    else:  # landscape
        h = int(rng.integers(240, 400))
        w = int(rng.integers(h + 20, 560))
    gh, gw = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    field = rng.uniform(0, 255, (gh, gw, 3)).astype(np.float32)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(1, 7))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.integers(8, max(9, min(h, w) // 2)))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), size, colour, -1)
        else:
            cv2.rectangle(img, (cx, cy), (cx + size, cy + int(size * rng.uniform(0.3, 2))), colour, -1)
    if rng.random() < 0.5:  # stripes
        period = float(rng.uniform(4, 40))
        angle = float(rng.uniform(0, np.pi))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period))
        img += (wave * float(rng.uniform(10, 60)))[..., None]
    img += rng.normal(0, float(rng.uniform(0, 25)), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if index % 4 == 2:  # greyscale JPEG (decoded back as 3 equal channels)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img


def jpeg_roundtrip(img: np.ndarray) -> np.ndarray:
    """What cv2.imread returns for `img` written as a JPEG (BGR, 3 channels)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def calibration_batch(seed: int, count: int) -> np.ndarray:
    """Preprocessed [count, 3, 224, 224] images for fitting the synthetic classifier."""
    rng = np.random.default_rng([seed, 2])
    return np.stack([preprocess_bgr(jpeg_roundtrip(draw_image(rng, i))) for i in range(count)])


def _write(img: np.ndarray, path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise HarnessError(f"cannot write {path}")


def make_dataset(out: Path, samples: int, seed: int,
                 predict: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Write `out/val/*.JPEG` and `out/val_map.txt`; returns the labels.

    `predict(batch [n,3,224,224]) -> softmax [n,1001]` is the fp32 teacher.
    """
    out = Path(out)
    rng = np.random.default_rng([seed, 3])
    rels = [f"val/ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(samples)]
    labels = np.full(samples, -1, dtype=np.int64)
    pending = list(range(samples))
    for _ in range(MAX_REDRAWS):
        if not pending:
            break
        for i in pending:
            _write(draw_image(rng, i), out / rels[i])
        retry = []
        for start in range(0, len(pending), LABEL_BATCH):
            chunk = pending[start : start + LABEL_BATCH]
            batch = np.stack([preprocess_image(out / rels[i]) for i in chunk])
            probs = np.asarray(predict(batch), dtype=np.float64)
            top2 = np.sort(np.log(np.maximum(probs, 1e-300)), axis=1)[:, -2:]
            best = probs.argmax(axis=1)
            for i, cls, (second, first) in zip(chunk, best, top2, strict=True):
                if cls == 0 or first - second < MIN_MARGIN:
                    retry.append(i)
                else:
                    labels[i] = cls - 1
        pending = retry
    if pending:
        raise HarnessError(f"synthetic dataset: {len(pending)} images kept a thin top-1 margin; "
                           "try another --seed")
    collision = label_collision(labels.tolist())
    if collision > MAX_LABEL_COLLISION:
        raise HarnessError(f"synthetic dataset: two samples share a label with chance {collision:.1%} "
                           f"({len(set(labels.tolist()))} distinct labels over {samples} samples; "
                           f"need at most {MAX_LABEL_COLLISION:.0%}); try another --seed")
    lines = "".join(f"{rel} {label}\n" for rel, label in zip(rels, labels, strict=True))
    (out / VAL_MAP).write_text(lines, encoding="utf-8")
    return labels
