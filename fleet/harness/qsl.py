"""The query sample library: performance samples held in memory, one contiguous array per input.

LoadGen tells the QSL which samples to hold before timing starts; the SUT then builds each
batch's feed with a single fancy-indexing gather from these arrays (no per-sample Python
work, no disk). A sample that cannot be loaded is recorded and left as zeros: raising inside
a LoadGen callback would take the process down, so the run is marked failed instead.
"""

from __future__ import annotations

import threading

import numpy as np

from fleet.harness.tasks.base import Task


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
                text = " ".join(str(exc).split()) or type(exc).__name__
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
        self.arrays: dict[str, np.ndarray] = {}
        self.row_of = np.full(task.total_sample_count, -1, dtype=np.int64)

    def load(self, indices: list[int]) -> None:
        """LoadGen's LoadSamplesToRam: add these samples (already loaded ones are kept)."""
        new = [i for i in dict.fromkeys(indices) if self.row_of[i] < 0]
        if not new:
            return
        start = len(next(iter(self.arrays.values()))) if self.arrays else 0
        grown = {spec.name: np.zeros((start + len(new), *spec.shape), dtype=spec.dtype)
                 for spec in self.task.inputs}
        for name, array in self.arrays.items():
            grown[name][:start] = array
        for offset, index in enumerate(new):
            row = start + offset
            try:
                sample = self.task.load_sample(index)
                for name, array in grown.items():
                    array[row] = sample[name]
            except Exception as exc:
                self.errors.record(f"loading sample {index}", exc)
            self.row_of[index] = row
        self.arrays = grown

    def unload(self, indices: list[int]) -> None:
        """LoadGen's UnloadSamplesFromRam; memory is freed once nothing is loaded."""
        self.row_of[np.asarray(list(indices), dtype=np.int64)] = -1
        if not (self.row_of >= 0).any():
            self.arrays = {}

    def feed(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The backend feed for these QSL indices (one gather per input)."""
        rows = self.row_of[indices]
        if (rows < 0).any():
            missing = np.asarray(indices)[rows < 0][:5].tolist()
            raise RuntimeError(f"LoadGen issued samples that are not loaded: {missing}")
        return self.task.gather(self.arrays, rows)
