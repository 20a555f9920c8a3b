"""The query sample library: performance samples held in memory, one contiguous array per input.

LoadGen tells the QSL which samples to hold before timing starts; the SUT then builds each
batch's feed with a single fancy-indexing gather from these arrays (no per-sample Python
work, no disk). A sample that cannot be loaded is recorded and left as zeros: raising inside
a LoadGen callback would take the process down, so the run is marked failed instead.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from fleet.harness.errors import one_line
from fleet.harness.tasks.base import Task, TensorSpec


class RunErrors:
    """Errors seen during a run (inference, loading); the first message and a count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.first: str | None = None

    def record(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.count += 1
            if self.first is None:
                text = one_line(exc) or type(exc).__name__
                self.first = f"{where}: {type(exc).__name__}: {text}"[:500]

    def summary(self) -> str | None:
        if not self.count:
            return None
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return f"{self.first}{more}"


class SampleStore:
    """Samples in memory: `arrays[input name][row]`, `row_of[qsl index]` (-1 = not loaded)."""

    def __init__(self, task: Task, errors: RunErrors) -> None:
        self.task = task
        self.errors = errors
        # input name -> one array whose row r is a sample, or a list of arrays (ragged input)
        self.arrays: dict[str, Any] = {}
        self._ragged = [spec.name for spec in task.sample_inputs if spec.ragged]
        self.row_of = np.full(task.total_sample_count, -1, dtype=np.int64)

    def load(self, indices: list[int]) -> None:
        """LoadGen's LoadSamplesToRam: add these samples (already loaded ones are kept)."""
        new = [i for i in dict.fromkeys(indices) if self.row_of[i] < 0]
        if not new:
            return
        start = len(next(iter(self.arrays.values()))) if self.arrays else 0
        specs = self.task.sample_inputs
        grown: dict[str, Any] = {
            spec.name: [*self.arrays.get(spec.name, []), *([None] * len(new))] if spec.ragged
            else np.zeros((start + len(new), *spec.shape), dtype=spec.dtype)
            for spec in specs
        }
        for spec in specs:
            if not spec.ragged and spec.name in self.arrays:
                grown[spec.name][:start] = self.arrays[spec.name]
        for offset, index in enumerate(new):
            row = start + offset
            try:
                sample = self.task.load_sample(index)
                for spec in specs:
                    if spec.ragged:
                        grown[spec.name][row] = _ragged_row(spec, sample[spec.name])
                    else:
                        grown[spec.name][row] = sample[spec.name]
            except Exception as exc:
                self.errors.record(f"loading sample {index}", exc)
            self.row_of[index] = row
        self.arrays = grown

    def unload(self, indices: list[int]) -> None:
        """LoadGen's UnloadSamplesFromRam; memory is freed once nothing is loaded."""
        self.row_of[np.asarray(list(indices), dtype=np.int64)] = -1
        if not (self.row_of >= 0).any():
            self.arrays = {}

    def feed(self, indices: np.ndarray) -> dict[str, Any]:
        """The backend feed for these QSL indices (one gather per input)."""
        rows = self.row_of[indices]
        if (rows < 0).any():
            missing = np.asarray(indices)[rows < 0][:5].tolist()
            raise RuntimeError(f"LoadGen issued samples that are not loaded: {missing}")
        if not self._ragged:
            return self.task.gather(self.arrays, rows)
        dense = {name: array for name, array in self.arrays.items() if name not in self._ragged}
        feed = self.task.gather(dense, rows) if dense else {}
        for name in self._ragged:
            feed[name] = [self.arrays[name][int(r)] for r in rows]
        return feed


def _ragged_row(spec: TensorSpec, value: np.ndarray) -> np.ndarray:
    """A ragged sample as stored: C-contiguous, the spec's dtype and rank (checked, not cast silently)."""
    array = np.ascontiguousarray(value)
    if array.dtype != np.dtype(spec.dtype) or array.ndim != len(spec.shape) or any(
        want is not None and got != want for got, want in zip(array.shape, spec.shape, strict=True)
    ):
        raise ValueError(f"{spec.name} is {array.dtype}{list(array.shape)}, expected {spec.dtype}"
                         f"{[d if d is not None else 'any' for d in spec.shape]}")
    return array
