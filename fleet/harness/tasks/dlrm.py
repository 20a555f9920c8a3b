"""DLRM-v2 on multi-hot Criteo day 23: `dlrm-v2-99` and `dlrm-v2-99.9` (PyTorch, datacenter only).

Dataset: the reference's memory-mapped day_23 files (criteo.py). One LoadGen sample is an
aggregated sample, a run of 100 to 700 rows; the QSL holds each run's rows (dense features,
the 26 multi-hot index lists side by side, labels), so samples differ in size (ragged). A
batch is several samples' rows in one forward (`infer`: concatenate, one `backend.run`,
split back per sample in row order); a sample's response is its rows' `[prediction, label]`
float32 pairs, the reference's payload. Accuracy is accuracy-dlrm.py's ROC AUC
(accuracy/criteo.py). The network is DLRM-DCNv2 as torchrec builds it (dlrm_model.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.tasks import criteo
from fleet.harness.tasks.base import AccuracyResult, Indices, Task, TensorSpec, scoring

DENSE = "dense"  # float32 [rows, 13]
SPARSE = "sparse"  # int32 [rows, 214]: features 0..25's indices side by side, in feature order
LABEL = "label"  # float32 [rows]: the QSL keeps each row's label for the response
PROBABILITY = "probability"  # the model's output per row
PAIRS = "pairs"  # infer's per-sample [prediction, label] rows
SPARSE_WIDTH = sum(criteo.HOTNESS)


class DLRMv2(Task):
    name = "dlrm-v2-99"
    rules_model = "dlrm-v2-99"
    model_backends = ("pytorch",)
    node_extras = ("criteo",)
    inputs = (TensorSpec(DENSE, "float32", (criteo.DENSE_FEATURES,)),
              TensorSpec(SPARSE, "int32", (SPARSE_WIDTH,)))
    outputs = (TensorSpec(PROBABILITY, "float32", ()),)
    response_dtype = "float32"

    def __init__(self) -> None:
        self._day: criteo.Day23 | None = None
        self._offsets = np.zeros(1, dtype=np.int64)

    @property
    def sample_inputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec(DENSE, "float32", (None, criteo.DENSE_FEATURES)),
                TensorSpec(SPARSE, "int32", (None, SPARSE_WIDTH)),
                TensorSpec(LABEL, "float32", (None,)))

    @property
    def infer_outputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec(PAIRS, "float32", (None, 2)),)

    def torch_model(self, path: Path) -> Any:
        from fleet.harness.tasks.dlrm_model import load_dlrm

        return load_dlrm(path)

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        # Nothing to cache: the files are already the model's inputs, memory-mapped.
        self._day = criteo.open_day23(Path(dataset_dir))
        self._offsets = criteo.sample_offsets(self._day.rows)

    @property
    def total_sample_count(self) -> int:
        return len(self._offsets) - 1

    @property
    def sample_rows(self) -> np.ndarray:
        """Rows per aggregated sample, in QSL order (valid after open())."""
        return np.diff(self._offsets)

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        return [Path(dataset_dir) / name for name in criteo.FILES]

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        """The sample's rows copied out of the memory maps (LoadGen's loaded set lives in RAM)."""
        assert self._day is not None, "open() first"
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        day = self._day
        return {
            DENSE: np.array(day.dense[start:end]),
            SPARSE: np.concatenate([a[start:end] for a in day.sparse], axis=1),
            LABEL: np.asarray(day.labels[start:end], dtype=np.float32),
        }

    def infer(self, backend: Any, feed: dict[str, Any], n: int) -> dict[str, Any]:
        """One forward over the batch's rows; the predictions split back per sample with their labels."""
        dense, sparse, labels = feed[DENSE], feed[SPARSE], feed[LABEL]
        if len(dense) == 1:
            rows = {DENSE: dense[0], SPARSE: sparse[0]}
        else:
            rows = {DENSE: np.concatenate(dense), SPARSE: np.concatenate(sparse)}
        total = len(rows[DENSE])
        pairs = np.empty((total, 2), dtype=np.float32)
        pairs[:, 0] = backend.run(rows, total)[PROBABILITY].reshape(-1)
        pairs[:, 1] = labels[0] if len(labels) == 1 else np.concatenate(labels)
        ends = np.cumsum([len(d) for d in dense])[:-1]
        return {PAIRS: np.split(pairs, ends)}

    def postprocess(self, outputs: dict[str, Any], n: int, *, indices: Indices) -> list[np.ndarray]:
        return list(outputs[PAIRS])

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        from fleet.harness.accuracy.criteo import score_accuracy_log

        samples = len(criteo.sample_offsets(criteo.open_day23(Path(dataset_dir)).rows)) - 1
        with scoring("DLRM-v2", accuracy_log):
            result = score_accuracy_log(accuracy_log, samples)
        return AccuracyResult(result.text, round(result.auc, 3))


class DLRMv2_999(DLRMv2):
    name = "dlrm-v2-99.9"
    rules_model = "dlrm-v2-99.9"
