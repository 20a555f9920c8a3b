"""The KiTS19 inference set in the reference's preprocessed layout (what `preprocess.py` writes).

    DIR/preprocessed_files.pkl        {'file_list': [case names, QSL order],
                                       'cases': {name: {'image_shape': (1, D, H, W),
                                                        'reshaped_affine': 4x4, ...}}}
    DIR/<case>.pkl                    [image float32 (1, D, H, W), label uint8 (1, D, H, W)]
    DIR/nifti/<case>/segmentation.nii.gz   the label on the preprocessed grid (accuracy reads it)

QSL index i is `file_list[i]`. The pickles are read with an unpickler that builds numpy
arrays, dicts, lists, tuples and scalars only: a dataset directory is data, and a pickle that
asks for anything else (code) is refused as corrupt.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.errors import HarnessError, one_line
from fleet.harness.tasks.unet3d_window import check_case_shape

INDEX_FILE = "preprocessed_files.pkl"
NIFTI_DIR = "nifti"
SEGMENTATION_FILE = "segmentation.nii.gz"

# (module, name) a reference pickle may name: numpy's array reconstruction, across numpy 1 and 2.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("builtins", "slice"),
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not data")
        return super().find_class(module, name)


def load_pickle(path: Path) -> Any:
    """A reference pickle's content; ValueError (one line) when it is unreadable or not data."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return _DataUnpickler(io.BytesIO(data)).load()
    except Exception as exc:  # truncated, wrong format, or a forbidden global
        raise ValueError(f"{path} is not a readable pickle ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Case:
    name: str
    image_shape: tuple[int, ...]  # (1, D, H, W)
    affine: np.ndarray  # reshaped_affine: the preprocessed grid's voxel-to-world map


def index_path(dataset_dir: Path) -> Path:
    return Path(dataset_dir) / INDEX_FILE


def case_path(dataset_dir: Path, name: str) -> Path:
    return Path(dataset_dir) / f"{name}.pkl"


def segmentation_path(dataset_dir: Path, name: str) -> Path:
    return Path(dataset_dir) / NIFTI_DIR / name / SEGMENTATION_FILE


def list_cases(dataset_dir: Path) -> list[Case]:
    """The cases in QSL order, from the index; HarnessError naming what is wrong with it."""
    path = index_path(dataset_dir)
    if not path.is_file():
        raise HarnessError(f"dataset {dataset_dir}: {INDEX_FILE} does not exist (expected the KiTS19 "
                           "inference set as the reference preprocess.py writes it)")
    try:
        index = load_pickle(path)
        names = [str(n) for n in index["file_list"]]
        aux = index["cases"]
        cases = [Case(n, tuple(int(d) for d in aux[n]["image_shape"]),
                      np.asarray(aux[n]["reshaped_affine"], dtype=np.float64)) for n in names]
    except ValueError as exc:
        raise HarnessError(f"dataset {dataset_dir}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise HarnessError(f"dataset {dataset_dir}: {INDEX_FILE} lacks file_list or a case's "
                           f"image_shape/reshaped_affine ({type(exc).__name__}: {exc})") from None
    if not cases:
        raise HarnessError(f"dataset {dataset_dir}: {INDEX_FILE} lists no case")
    if len(set(names)) != len(names):
        raise HarnessError(f"dataset {dataset_dir}: {INDEX_FILE} lists a case twice")
    for case in cases:
        problem = check_case_shape(case.image_shape)
        if problem:
            raise HarnessError(f"dataset {dataset_dir}: {case.name}: {problem}")
    return cases


def load_case_image(dataset_dir: Path, case: Case) -> np.ndarray:
    """The preprocessed image (1, D, H, W) float32 of one case, checked against the index."""
    path = case_path(dataset_dir, case.name)
    try:
        content = load_pickle(path)
        image = content[0]
    except ValueError as exc:
        raise HarnessError(f"dataset case {case.name}: {exc}") from None
    except (IndexError, KeyError, TypeError):
        raise HarnessError(f"dataset case {case.name}: {path} does not hold [image, label]") from None
    if not isinstance(image, np.ndarray) or image.dtype != np.float32 or image.shape != case.image_shape:
        got = f"{image.dtype}{list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise HarnessError(f"dataset case {case.name}: {path} holds an image {got}, the index says "
                           f"float32{list(case.image_shape)}")
    return np.ascontiguousarray(image)


def load_segmentation(dataset_dir: Path, case: Case) -> np.ndarray:
    """The ground-truth labels (D, H, W) uint8 of one case, read as accuracy_kits.py reads them."""
    import nibabel

    path = segmentation_path(dataset_dir, case.name)
    try:
        volume = nibabel.load(str(path)).get_fdata()
    except Exception as exc:  # nibabel raises FileNotFoundError, ImageFileError, EOFError, ...
        raise HarnessError(f"dataset case {case.name}: cannot read {path} "
                           f"({type(exc).__name__}: {one_line(exc, 200)})") from None
    return volume.astype(np.uint8)
