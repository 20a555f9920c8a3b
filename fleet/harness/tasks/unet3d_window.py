"""KiTS19 sliding-window inference as the v3.1 reference does it (`base_SUT.infer_single_query`).

A case (1, D, H, W), every dimension a multiple of 64 and at least 128 after preprocessing, is
cut into 128^3 windows at stride 64 (overlap 0.5). Each window's logits (1, 3, 128^3) are
multiplied by a Gaussian importance map G and added into a result volume, and G into a
normalisation map; the result is divided by that map and the argmax over the three classes
is the segmentation, uint8 (D, H, W). G is the cube root of the outer product of three 1-D
Gaussians (128 points, std 0.125 x 128), normalised to a maximum of 1 (scipy.signal.windows
.gaussian's formula, computed here in numpy). All arithmetic is float32, in the reference's
order, so the labels match it bit for bit.

One saving over the reference: the normalisation map depends only on the case's shape, so
it is built once per shape (three identical channels in the reference; one here, broadcast)
and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

ROI = 128
OVERLAP = 0.5
GAUSSIAN_STD_SHARE = 0.125
CLASSES = 3


def gaussian_1d(points: int, std: float) -> np.ndarray:
    """scipy.signal.windows.gaussian(points, std): exp(-n^2 / 2 std^2), n centred on the window."""
    n = np.arange(points, dtype=np.float64) - (points - 1.0) / 2.0
    return np.exp(-(n**2) / (2.0 * std * std))


def importance_map(roi: int = ROI) -> np.ndarray:
    """The reference's Gaussian weighting of one window, float32 (roi, roi, roi)."""
    g1 = gaussian_1d(roi, GAUSSIAN_STD_SHARE * roi)
    g3 = np.outer(np.outer(g1, g1), g1).reshape(roi, roi, roi)
    g3 = np.cbrt(g3)
    g3 /= g3.max()
    return g3.astype(np.float32)


def window_origins(shape: tuple[int, ...], roi: int = ROI,
                   overlap: float = OVERLAP) -> Iterator[tuple[int, int, int]]:
    """Window corners (i, j, k) in the reference's order (last axis fastest)."""
    strides = [int(roi * (1 - overlap)) for _ in range(3)]
    counts = [(shape[d] - roi) // strides[d] + 1 for d in range(3)]
    for i in range(0, strides[0] * counts[0], strides[0]):
        for j in range(0, strides[1] * counts[1], strides[1]):
            for k in range(0, strides[2] * counts[2], strides[2]):
                yield i, j, k


def check_case_shape(shape: tuple[int, ...], roi: int = ROI, overlap: float = OVERLAP) -> str | None:
    """Why a preprocessed image (1, D, H, W) cannot be windowed exactly; None when it can."""
    stride = int(roi * (1 - overlap))
    if len(shape) != 4 or shape[0] != 1:
        return f"image shape {list(shape)} is not (1, D, H, W)"
    bad = [d for d in shape[1:] if d < roi or d % stride]
    if bad:
        return (f"image shape {list(shape)}: every spatial size must be a multiple of {stride} and at "
                f"least {roi} (the reference preprocessing pads it so)")
    return None


class SlidingWindow:
    """Segment whole cases with a function that runs one (1, 1, 128^3) window."""

    def __init__(self, roi: int = ROI, overlap: float = OVERLAP) -> None:
        self.roi = roi
        self.overlap = overlap
        self.patch_weight = importance_map(roi)
        self._norm_maps: dict[tuple[int, ...], np.ndarray] = {}

    def norm_map(self, spatial: tuple[int, ...]) -> np.ndarray:
        """Sum of the window weights over a volume of this shape (float32, built once per shape)."""
        cached = self._norm_maps.get(spatial)
        if cached is None:
            r = self.roi
            cached = np.zeros(spatial, dtype=np.float32)
            for i, j, k in window_origins(spatial, r, self.overlap):
                cached[i : i + r, j : j + r, k : k + r] += self.patch_weight
            self._norm_maps[spatial] = cached
        return cached

    def segment(self, image: np.ndarray, run_window: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The uint8 (D, H, W) labels of one image (1, D, H, W); `run_window` gives (1, 3, r, r, r)."""
        spatial = tuple(int(d) for d in image.shape[1:])
        r = self.roi
        result = np.zeros((CLASSES, *spatial), dtype=np.float32)
        weight = self.patch_weight
        for i, j, k in window_origins(spatial, r, self.overlap):
            window = np.ascontiguousarray(image[np.newaxis, :, i : i + r, j : j + r, k : k + r])
            logits = run_window(window)[0]
            logits *= weight
            result[:, i : i + r, j : j + r, k : k + r] += logits
        result /= self.norm_map(spatial)
        return np.argmax(result, axis=0).astype(np.uint8)
