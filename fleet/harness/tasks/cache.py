"""Preprocessed samples on disk: one `.npy` per dataset item under a task's versioned cache dir.

Decoding and resizing run once per dataset, never in the timed part: later runs load the
arrays. Each file is written under a temporary name and renamed, so a preprocessing that is
killed halfway never leaves a truncated array that the next run would trust.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MAX_WORKERS = 8


class NpyCache:
    """`<root>/<names[i]>.npy` holds QSL item i's preprocessed array."""

    def __init__(self, root: Path, names: Sequence[str]) -> None:
        self.root = Path(root)
        self._names = list(names)

    def path(self, index: int) -> Path:
        return self.root / (self._names[index] + ".npy")

    def has(self, index: int) -> bool:
        return self.path(index).is_file()

    def load(self, index: int) -> np.ndarray:
        return np.load(self.path(index))

    def store(self, index: int, array: np.ndarray) -> None:
        dst = self.path(index)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, dst)

    def fill(self, preprocess: Callable[[int], np.ndarray]) -> None:
        """Preprocess and store every item not cached yet, on a few threads (cv2 drops the GIL).

        Items sharing a name share a file, made once. The first failure is raised.
        """
        todo = list({self.path(i): i for i in range(len(self._names)) if not self.has(i)}.values())
        if not todo:
            return
        workers = max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda i: self.store(i, preprocess(i)), todo):
                pass
