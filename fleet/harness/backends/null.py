"""The null backend: answers at once with fixed outputs of the right shapes and dtypes.

It measures the harness's own ceiling (LoadGen plumbing, batching, responses) with no model
cost; it loads no model and needs no input, so the SUT skips gathering the feed. With
`null_sample_ms` (Tuning) each batch sleeps that long per sample instead: a model whose speed
is known exactly and costs no CPU, for orchestration benchmarks and planted slowdowns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.backends import run_anywhere
from fleet.harness.tasks.base import Task


class NullBackend:
    name = "null"
    execution_provider = "none"
    needs_feed = False
    max_useful_batch = 128
    precision = "fp32"

    def __init__(self, model: Path | None, task: Task, options: Any) -> None:
        self.threads = 1
        self._task = task
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._sample_s = (getattr(options, "null_sample_ms", None) or 0.0) / 1000

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        if self._sample_s:
            time.sleep(self._sample_s * n)
        out = self._cache.get(n)
        if out is None:
            out = self._cache[n] = self._task.null_outputs(n)
        return out

    def pinned(self, call: Callable[..., Any]) -> Callable[..., Any]:
        return run_anywhere(call)

    def versions(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        self._cache.clear()
