"""Synthetic KiTS19 cases in the reference's preprocessed layout, labelled by the model (teacher).

Images are what `preprocess.py` leaves: float32 (1, D, H, W) in normalised CT units (clipped HU
[-79, 304] minus 101, over 76.9), every size a multiple of 64 and at least 128, edges padded
with -2.2. Their content is a few smooth blobs over a noisy background, so the model's
labels form regions rather than noise. Sizes cycle through SHAPES: each is larger than 128^3
along one axis, so every case is two overlapping windows (a window bug shows in every case),
and two cases of the same size let a shuffled order be scored.

The labels are the synthetic model's own sliding-window segmentation (onnxruntime, the
reference's window, overlap and Gaussian weights), so a correct harness scores DICE ~1. The
set is refused (ValueError) unless it can tell a broken harness apart: every case has kidney
and tumor voxels, and a flipped axis or a shuffled case order scores far lower.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.tasks import kits19
from fleet.harness.tasks.unet3d import INPUT_NAME, OUTPUT_NAME
from fleet.harness.tasks.unet3d_window import SlidingWindow, window_origins

SHAPES = ((128, 128, 192), (192, 128, 128), (128, 128, 192), (128, 192, 128))
PADDING_VAL = -2.2
LOW, HIGH = (-79.0 - 101.0) / 76.9, (304.0 - 101.0) / 76.9
SPACING = (1.6, 1.2, 1.2)  # the reference's target spacing: the preprocessed grid's voxel size
MIN_CLASS_SHARE = 0.01  # of a case's voxels, for kidney and for tumor
MAX_BROKEN_DICE = 0.7  # a flipped axis or a shuffled order must score below this


@dataclass(frozen=True)
class Kits19Report:
    cases: int
    windows: int  # sliding windows per pass over the set
    kidney_share: float
    tumor_share: float
    flipped_dice: float
    shuffled_dice: float


def synthetic_image(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """One preprocessed-looking image (1, D, H, W) float32."""
    axes = [np.arange(n, dtype=np.float32) for n in shape]
    image = np.full(shape, -1.2, dtype=np.float32)
    for _ in range(10):
        centre = [rng.uniform(0.1 * n, 0.9 * n) for n in shape]
        sigma = rng.uniform(6.0, 22.0)
        parts = [np.exp(-((a - c) ** 2) / (2 * sigma**2)) for a, c in zip(axes, centre, strict=True)]
        blob = parts[0][:, None, None] * parts[1][None, :, None] * parts[2][None, None, :]
        image += rng.uniform(1.0, 3.5) * blob.astype(np.float32)
    image += rng.normal(0.0, 0.2, size=shape).astype(np.float32)
    np.clip(image, LOW, HIGH, out=image)
    pad = int(rng.integers(4, 12))  # the reference pads a case's edges up to the window grid
    image[:pad] = PADDING_VAL
    image[:, :, -pad:] = PADDING_VAL
    return image[np.newaxis]


def _session(model_path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def teacher_labels(session, window: SlidingWindow, image: np.ndarray) -> np.ndarray:
    return window.segment(image, lambda patch: session.run([OUTPUT_NAME], {INPUT_NAME: patch})[0])


def _mean_dice(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    from fleet.harness.accuracy.kits import case_dice

    return float(np.mean([np.mean(case_dice(p, t)) for p, t in pairs])) if pairs else 0.0


def write_kits19(out: Path, model_path: Path, num_cases: int, seed: int) -> Kits19Report:
    """Write `num_cases` cases under `out` in the reference's layout; ValueError if not diverse."""
    import nibabel

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 19)
    session = _session(model_path)
    window = SlidingWindow()
    affine = np.diag([*SPACING, 1.0])
    names = [f"case_{i:05d}" for i in range(num_cases)]
    aux: dict[str, dict] = {}
    labels: list[np.ndarray] = []
    windows = 0
    for i, name in enumerate(names):
        shape = SHAPES[i % len(SHAPES)]
        image = synthetic_image(shape, rng)
        label = teacher_labels(session, window, image)
        windows += len(list(window_origins(shape)))
        for cls, what in ((1, "kidney"), (2, "tumor")):
            if np.count_nonzero(label == cls) < MIN_CLASS_SHARE * label.size:
                raise ValueError(f"{name}: the model labels under {MIN_CLASS_SHARE:.0%} of it {what}")
        with open(kits19.case_path(out, name), "wb") as f:
            pickle.dump([image, label[np.newaxis]], f)
        seg = kits19.segmentation_path(out, name)
        seg.parent.mkdir(parents=True, exist_ok=True)
        nibabel.save(nibabel.Nifti1Image(label, affine=affine), str(seg))
        aux[name] = {"case": name, "image_shape": image.shape, "original_affine": affine,
                     "reshaped_affine": affine, "zoom_factor": np.ones(3)}
        labels.append(label)
    with open(kits19.index_path(out), "wb") as f:
        pickle.dump({"file_list": names, "cases": aux}, f)
    flipped = _mean_dice([(np.flip(lab, axis=0), lab) for lab in labels])
    same = [(a, b) for a in range(num_cases) for b in range(num_cases)
            if a < b and labels[a].shape == labels[b].shape]
    shuffled = _mean_dice([(labels[b], labels[a]) for a, b in same])
    for what, score in (("a flipped axis", flipped), ("a shuffled case order", shuffled)):
        if score > MAX_BROKEN_DICE:
            raise ValueError(f"{what} still scores DICE {score:.3f} (over {MAX_BROKEN_DICE})")
    voxels = sum(lab.size for lab in labels)
    return Kits19Report(
        cases=num_cases, windows=windows,
        kidney_share=sum(int(np.count_nonzero(lab == 1)) for lab in labels) / voxels,
        tumor_share=sum(int(np.count_nonzero(lab == 2)) for lab in labels) / voxels,
        flipped_dice=flipped, shuffled_dice=shuffled,
    )
