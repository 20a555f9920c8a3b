"""RetinaNet model I/O: what goes into the ONNX model and what LoadGen receives back.

The official `resnext50_32x4d_fpn.onnx` takes `images` float32 [1,3,800,800] (batch fixed at 1)
and returns `boxes` [K,4] (x1,y1,x2,y2 in 800x800 pixels), `scores` [K] (descending) and
`labels` int64 [K] (category ids 0..263); a batched backend adds a leading image axis.
LoadGen gets, per detection, 7 float32 `[qsl_idx, ymin, xmin, ymax, xmax, score, label]` with
the box normalised to 0..1 and its coordinates reordered y-first
(`PostProcessOpenImagesRetinanet`); an image without detections sends an empty payload.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "labels")
MODEL_BATCH = 1  # the official export has no dynamic axes
SCORE_THRESHOLD = 0.05
INPUT_SIZE = 800
RECORD_FLOATS = 7


def make_feed(images: np.ndarray) -> dict[str, np.ndarray]:
    """The raw onnxruntime feed for one preprocessed image ([3,800,800] or [1,3,800,800])."""
    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.shape != (MODEL_BATCH, 3, INPUT_SIZE, INPUT_SIZE):
        raise ValueError(
            f"RetinaNet takes one [3,{INPUT_SIZE},{INPUT_SIZE}] image per run, got {batch.shape}"
        )
    return {INPUT_NAME: batch}


def image_detections(outputs: Sequence[np.ndarray], n: int) -> list[tuple[np.ndarray, ...]]:
    """(boxes, scores, labels) of each of a batch's n images, in batch order.

    The official export runs one image and has no batch axis ([K,4], [K], [K]); a backend
    that runs several images at once adds one ([n,K,4], [n,K], [n,K], each image's list
    padded with scores below the threshold, which detection_records cuts off).
    """
    boxes, scores, labels = (np.asarray(o) for o in outputs)
    if boxes.ndim == 2:
        if n != 1:
            raise ValueError(f"RetinaNet outputs without a batch axis are one image, got a batch of {n}")
        return [(boxes, scores, labels)]
    if not len(boxes) == len(scores) == len(labels) == n:
        raise ValueError(f"RetinaNet outputs hold {len(boxes)} images for a batch of {n}")
    return list(zip(boxes, scores, labels, strict=True))


def detection_records(qsl_idx: int, outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Model outputs (boxes, scores, labels) -> [n, 7] float32 records, cut at the first low score."""
    boxes, scores, labels = (np.asarray(o) for o in outputs)
    n = len(scores)
    below = np.flatnonzero(scores < SCORE_THRESHOLD)
    if below.size:
        n = int(below[0])  # the reference walks in order and stops at the first low score
    records = np.empty((n, RECORD_FLOATS), dtype=np.float32)
    if n:
        b = boxes[:n].astype(np.float32)
        records[:, 0] = qsl_idx
        records[:, 1] = b[:, 1] / INPUT_SIZE
        records[:, 2] = b[:, 0] / INPUT_SIZE
        records[:, 3] = b[:, 3] / INPUT_SIZE
        records[:, 4] = b[:, 2] / INPUT_SIZE
        records[:, 5] = scores[:n]
        records[:, 6] = labels[:n]
    return records


def encode_payload(records: np.ndarray) -> bytes:
    """The bytes handed to QuerySamplesComplete (float32, row-major records)."""
    return np.ascontiguousarray(records, dtype=np.float32).tobytes()


def response_payload(qsl_idx: int, outputs: Sequence[np.ndarray]) -> bytes:
    return encode_payload(detection_records(qsl_idx, outputs))


def decode_payload(data: bytes) -> np.ndarray:
    """Inverse of encode_payload: [n, 7] float32 (n = 0 for an empty or too short payload)."""
    flat = np.frombuffer(data, dtype=np.float32)
    if flat.size < RECORD_FLOATS:
        return np.empty((0, RECORD_FLOATS), dtype=np.float32)
    usable = flat.size - flat.size % RECORD_FLOATS
    return flat[:usable].reshape(-1, RECORD_FLOATS)
