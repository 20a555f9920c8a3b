"""Criteo 1TB day 23 in the multi-hot layout the v3.1 DLRM-v2 reference reads (its `multihot-criteo`).

    DIR/day_23_dense.npy               float32 [N, 13] (already log(x+3) by torchrec's preprocessing)
    DIR/day_23_sparse_multi_hot.npz    uncompressed; members 0.npy .. 25.npy, int32 [N, hotness_k]
    DIR/day_23_labels.npy              [N, 1] 0/1 (integer or float)

All three are memory-mapped (the real files are tens of GB); the evaluation set is the first
ceil(N/2) rows, as the reference keeps them. One LoadGen sample is a contiguous run of rows
(an "aggregated sample", one user's queries): run lengths are drawn from the reference's
quantile file with NumPy's legacy generator seeded 123 until the evaluation rows are used up,
the last run cut to fit. QSL index i is the i-th run.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.errors import HarnessError

DENSE = "day_23_dense.npy"
SPARSE = "day_23_sparse_multi_hot.npz"
LABELS = "day_23_labels.npy"
FILES = (DENSE, SPARSE, LABELS)
# The reference's multi-hot sizes, feature 0..25 (tasks-v3.1.md 6.1; torchrec DEFAULT_CAT_NAMES order).
HOTNESS = (3, 2, 1, 2, 6, 1, 1, 1, 1, 7, 3, 8, 1, 6, 9, 5, 1, 1, 1, 12, 100, 27, 10, 3, 1, 1)
DENSE_FEATURES = 13
# tools/dist_quantile.txt: rows per aggregated sample, as an inverse CDF in 5 % steps.
DIST_QUANTILE = (100, 100, *(200,) * 12, 300, 300, 400, 500, 600, 700)
AGGREGATION_SEED = 123  # main.py --numpy-rand-seed
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (30 bytes)


@dataclass(frozen=True)
class Day23:
    """The evaluation rows, memory-mapped: dense [R,13], 26 sparse [R,k], labels [R]."""

    dense: np.ndarray
    sparse: tuple[np.ndarray, ...]
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.dense)


def evaluation_rows(total_rows: int) -> int:
    """The reference's evaluation half: rows [0, ceil(N/2))."""
    return total_rows // 2 + total_rows % 2


def draw_run_lengths(count: int, seed: int = AGGREGATION_SEED) -> np.ndarray:
    """The first `count` run lengths the reference draws (legacy RandomState, one randint each)."""
    picks = np.random.RandomState(seed).randint(0, len(DIST_QUANTILE), size=count)
    return np.asarray(DIST_QUANTILE, dtype=np.int64)[picks]


def sample_offsets(rows: int, seed: int = AGGREGATION_SEED) -> np.ndarray:
    """Row offsets of the aggregated samples: sample i is rows [off[i], off[i+1]).

    Run lengths are at least 100 rows, so rows // 100 + 1 draws always suffice; the draws are
    taken in one vector (the same stream as the reference's one-at-a-time loop).
    """
    if rows <= 0:
        raise HarnessError("the Criteo evaluation set has no rows")
    ends = np.cumsum(draw_run_lengths(rows // min(DIST_QUANTILE) + 1, seed))
    count = int(np.searchsorted(ends, rows, side="left")) + 1  # the run that reaches `rows`, cut to fit
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = np.minimum(ends[:count], rows)
    return offsets


def rows_for_samples(samples: int, seed: int = AGGREGATION_SEED) -> int:
    """Evaluation rows that aggregate into exactly `samples` samples (none of them cut)."""
    return int(draw_run_lengths(samples, seed).sum())


def _require(path: Path) -> None:
    if not path.is_file():
        raise HarnessError(f"Criteo file {path} is missing (the reference's day_23 files belong at the "
                           f"top of the dataset directory: {', '.join(FILES)})")


def _npy(path: Path) -> np.ndarray:
    _require(path)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:  # a truncated array, or not .npy at all
        raise HarnessError(f"Criteo file {path} is not a complete .npy array: {exc}") from None


def _npz_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray:
    """One stored (uncompressed) .npy member memory-mapped where it lies in the .npz."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise HarnessError(f"Criteo file {path} lacks member {name} (26 members 0.npy .. 25.npy)") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise HarnessError(f"Criteo file {path}: member {name} is compressed; the reference memory-maps "
                           f"the members, so save it with numpy.savez, not savez_compressed")
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
        start = info.header_offset + _LOCAL_HEADER.size + local[9] + local[10]  # name, extra field
        fh.seek(start)
        try:
            version = np.lib.format.read_magic(fh)
            fmt = np.lib.format
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = reader(fh)
        except ValueError as exc:
            raise HarnessError(f"Criteo file {path}: member {name} is not a .npy array: {exc}") from None
        offset = fh.tell()
    if dtype != np.int32:
        raise HarnessError(f"Criteo file {path}: member {name} is {dtype}, the reference reads int32")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offset - start + nbytes > info.file_size or offset + nbytes > path.stat().st_size:
        raise HarnessError(f"Criteo file {path}: member {name} is truncated (its header promises {shape})")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def open_day23(dataset_dir: Path) -> Day23:
    """The evaluation rows of the three files, checked; one line naming the file that is wrong."""
    dataset_dir = Path(dataset_dir)
    dense = _npy(dataset_dir / DENSE)
    labels = _npy(dataset_dir / LABELS)
    if dense.dtype != np.float32 or dense.ndim != 2 or dense.shape[1] != DENSE_FEATURES:
        raise HarnessError(f"Criteo file {dataset_dir / DENSE} is {dense.dtype} {list(dense.shape)}, "
                           f"expected float32 [N, {DENSE_FEATURES}]")
    if labels.dtype.kind not in "iuf" or labels.ndim not in (1, 2) or labels.size != len(labels):
        raise HarnessError(f"Criteo file {dataset_dir / LABELS} is {labels.dtype} {list(labels.shape)}, "
                           f"expected 0/1 labels [N, 1]")
    path = dataset_dir / SPARSE
    _require(path)
    try:
        with zipfile.ZipFile(path) as archive:
            sparse = tuple(_npz_member(path, archive, f"{k}.npy") for k in range(len(HOTNESS)))
    except (zipfile.BadZipFile, OSError, struct.error) as exc:
        raise HarnessError(f"Criteo file {path} is not a readable .npz archive: {exc}") from None
    rows = len(dense)
    counts = [(LABELS, len(labels)), *((f"{SPARSE} member {k}.npy", len(a)) for k, a in enumerate(sparse))]
    for name, count in counts:
        if count != rows:
            raise HarnessError(f"Criteo file {name} has {count} rows, {DENSE} has {rows}: the day_23 files "
                               f"must come from one preprocessing run")
    for k, (array, hot) in enumerate(zip(sparse, HOTNESS, strict=True)):
        if array.ndim != 2 or array.shape[1] != hot:
            raise HarnessError(f"Criteo file {path}: member {k}.npy is {list(array.shape)}, the reference's "
                               f"hotness of feature {k} is {hot} ([N, {hot}])")
    keep = evaluation_rows(rows)
    return Day23(dense[:keep], tuple(a[:keep] for a in sparse), labels.reshape(-1)[:keep])
