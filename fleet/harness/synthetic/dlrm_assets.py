"""Synthetic DLRM-v2 checkpoint + multi-hot Criteo day 23, made together (teacher-labelled).

The model is DLRM-DCNv2 with the reference's 26 features, hotness, dense/over MLPs and cross
network (`full`; `small` narrows every width so that a two-core test node meets the 60 ms
Server bound), and tiny tables (64 rows each). The dataset is the reference's three day_23
files: dense features uniform in [0, 9), indices uniform over the tables, and labels that are
the teacher's own predictions thresholded at their median (half the rows click), so a correct
harness scores AUC 100 % and one that pairs rows with the wrong sample, feeds the features in
another order or swaps predictions and labels falls towards 50 %. The first ceil(N/2) rows
are the evaluation set; they are sized so that they aggregate into exactly `samples` samples
(the reference's seed-123 run lengths), and the second half, never read, is random.

Files are written in chunks (the submission profile's 204,800 samples are ~55 M evaluation
rows); before writing, the free disk is checked against what the files will take.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.synthetic import asset_marker, check_variant, sample_count, write_atomic
from fleet.harness.tasks import criteo

MODEL_FILE = "dlrm_dcnv2.pt"
DATASET_DIR = "criteo"
DEFAULT_SAMPLES = 64  # ~17,000 evaluation rows: seconds to write and to score
MIN_SAMPLES = 4  # so a shuffled row-to-sample mapping can be scored
TABLE_ROWS = 64
CHUNK_ROWS = 1 << 16
BYTES_PER_ROW = 4 * (criteo.DENSE_FEATURES + sum(criteo.HOTNESS) + 1)  # dense, indices, label
# Widths of the reference (full) and of a narrow copy for test nodes (small).
SIZES: dict[str, dict[str, Any]] = {
    "full": {"dim": 128, "dense_sizes": [512, 256, 128], "cross_layers": 3, "cross_rank": 512,
             "over_sizes": [1024, 1024, 512, 256, 1]},
    "small": {"dim": 16, "dense_sizes": [64, 32, 16], "cross_layers": 3, "cross_rank": 32,
              "over_sizes": [128, 128, 64, 32, 1]},
}
VARIANTS = tuple(SIZES)


@dataclass(frozen=True)
class DatasetSize:
    """What a synthetic day 23 of `samples` aggregated samples takes."""

    samples: int
    evaluation_rows: int
    total_rows: int

    @property
    def disk_bytes(self) -> int:
        return self.total_rows * BYTES_PER_ROW

    @property
    def loaded_bytes(self) -> int:
        """RAM of LoadGen's loaded set when every sample is a performance sample."""
        return self.evaluation_rows * BYTES_PER_ROW


def dataset_size(samples: int) -> DatasetSize:
    rows = criteo.rows_for_samples(samples)
    return DatasetSize(samples, rows, 2 * rows)


def needs_line(samples: int) -> str:
    """One line: rows, disk and RAM a synthetic set of `samples` aggregated samples takes."""
    size = dataset_size(samples)
    return (f"a synthetic DLRM-v2 set of {samples} aggregated samples is {size.evaluation_rows:,} evaluation "
            f"rows ({size.total_rows:,} in day_23), {size.disk_bytes / 1e9:.1f} GB on the node's disk, and "
            f"{size.loaded_bytes / 1e9:.1f} GB of RAM for LoadGen's loaded samples")


def plan_line(samples: int) -> str:
    """needs_line, and what a node does about it (synthetic.NEEDS)."""
    return (f"{needs_line(samples)}; each node that runs it checks its free disk and RAM before making it, "
            f"and refuses in one line")


def build_teacher(variant: str, seed: int) -> Any:
    import torch

    from fleet.harness.tasks.dlrm_model import DlrmDcn

    torch.manual_seed(seed)
    model = DlrmDcn([TABLE_ROWS] * len(criteo.HOTNESS), **SIZES[variant])
    with torch.no_grad():  # torchrec's initialisations; bags scaled so each feature weighs alike
        for k, hot in enumerate(criteo.HOTNESS):
            bag = model.sparse_arch.embedding_bag_collection.embedding_bags[f"t_cat_{k}"]
            torch.nn.init.normal_(bag.weight, std=1.0 / hot)
        for kernels in (model.inter_arch.crossnet.W_kernels, model.inter_arch.crossnet.V_kernels):
            for kernel in kernels:
                torch.nn.init.xavier_normal_(kernel)
    return model.eval()


def _sparse_chunks(seed: int, feature: int, rows: int) -> Any:
    """Feature `feature`'s indices for rows 0..rows, chunk by chunk (the same stream every time)."""
    rng = np.random.default_rng([seed, 1, feature])
    for start in range(0, rows, CHUNK_ROWS):
        yield rng.integers(0, TABLE_ROWS, size=(min(CHUNK_ROWS, rows - start), criteo.HOTNESS[feature]),
                           dtype=np.int32)


def _write_npz(path: Path, seed: int, rows: int) -> None:
    """The 26 members, stored (uncompressed) as the reference memory-maps them."""
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for k, hot in enumerate(criteo.HOTNESS):
            with archive.open(f"{k}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(
                    member, {"descr": "<i4", "fortran_order": False, "shape": (rows, hot)})
                for chunk in _sparse_chunks(seed, k, rows):
                    member.write(chunk.tobytes())
    tmp.replace(path)


def _write_npy(path: Path, array_of_chunks: Any, dtype: str, shape: tuple[int, ...]) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    start = 0
    for chunk in array_of_chunks:
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    del out
    tmp.replace(path)


def teacher_logits(model: Any, day: criteo.Day23) -> np.ndarray:
    """The teacher's logit for every evaluation row (sigmoid's input), in chunks."""
    import torch

    out = np.empty(day.rows, dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, day.rows, CHUNK_ROWS):
            end = min(start + CHUNK_ROWS, day.rows)
            dense = torch.from_numpy(np.array(day.dense[start:end]))
            sparse = torch.from_numpy(np.concatenate([a[start:end] for a in day.sparse], axis=1))
            out[start:end] = model.logit(dense, sparse).numpy()
    return out


def check_room(out: Path, size: DatasetSize) -> None:
    """Refuse, in one line, a set this node cannot hold on disk or load into RAM (10 % margin)."""
    from fleet.harness.hostfacts import meminfo_bytes

    free = shutil.disk_usage(out).free
    need = size.disk_bytes + size.disk_bytes // 10
    if free < need:
        raise HarnessError(f"{needs_line(size.samples)}; {out} has {free / 1e9:.1f} GB free: free "
                           f"{need / 1e9:.1f} GB there, or ask for fewer samples (--synthetic-samples)")
    available = meminfo_bytes("MemAvailable")
    need = size.loaded_bytes + size.loaded_bytes // 10
    if available is not None and available < need:
        raise HarnessError(f"{needs_line(size.samples)}; this node has {available / 1e9:.1f} GB of RAM "
                           f"available: run it on a node with more, or ask for fewer samples "
                           f"(--synthetic-samples)")


def write_day23(dataset: Path, model: Any, samples: int, seed: int) -> dict[str, Any]:
    """The three files, labelled by `model` (whose head bias moves so that 0.5 is the median)."""
    import torch

    size = dataset_size(samples)
    dataset.mkdir(parents=True, exist_ok=True)
    check_room(dataset, size)
    rows = size.total_rows
    rng = np.random.default_rng([seed, 0])
    _write_npy(dataset / criteo.DENSE,
               (rng.uniform(0, 9, size=(min(CHUNK_ROWS, rows - s), criteo.DENSE_FEATURES)).astype(np.float32)
                for s in range(0, rows, CHUNK_ROWS)),
               "float32", (rows, criteo.DENSE_FEATURES))
    _write_npz(dataset / criteo.SPARSE, seed, rows)
    # Labels last: a placeholder lets the reader open the set for the teacher's pass.
    _write_npy(dataset / criteo.LABELS, iter(()), "int32", (rows, 1))
    day = criteo.open_day23(dataset)
    logits = teacher_logits(model, day)
    median = float(np.median(logits))
    with torch.no_grad():
        model.over_arch.model[1].bias -= median
    labels = (logits > median).astype(np.int32)
    if labels.min() == labels.max():
        raise ValueError("the teacher gives every row the same score")
    second_half = np.random.default_rng([seed, 2]).integers(0, 2, size=rows - day.rows, dtype=np.int32)
    _write_npy(dataset / criteo.LABELS, (labels[:, None], second_half[:, None]), "int32", (rows, 1))
    return {"samples": samples, "evaluation_rows": size.evaluation_rows, "total_rows": rows,
            "positive_share": round(float(labels.mean()), 4)}


def make_dlrm_assets(out: Path, samples: int | None, seed: int, variant: str,
                     task: str = "dlrm-v2-99") -> dict[str, Any]:
    import torch

    from fleet.harness.tasks.dlrm import DLRMv2

    check_variant(variant, VARIANTS)
    samples = sample_count(task, samples, DEFAULT_SAMPLES, MIN_SAMPLES,
                           "a shuffled row-to-sample mapping must be scorable")
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    model = build_teacher(variant, seed)
    out.mkdir(parents=True, exist_ok=True)
    dataset = out / DATASET_DIR
    facts = write_day23(dataset, model, samples, seed)
    buffer = io.BytesIO()
    torch.save({f"model.{k}": v for k, v in model.state_dict().items()}, buffer)  # DLRMTrain's names
    model_path = out / MODEL_FILE
    write_atomic(model_path, buffer.getvalue())
    return asset_marker(task, seed, variant, model_path, dataset, DLRMv2().dataset_files(dataset), **facts)


def make_dlrm_999_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_dlrm_assets(out, samples, seed, variant, task="dlrm-v2-99.9")
