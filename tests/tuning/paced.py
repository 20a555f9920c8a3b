"""Backends whose time per batch is fixed by sleeping (sleeping needs no CPU), so the Server
limit a test meets is set by queueing, not by how busy the two shared cores are. Waking up
still takes up to ~10 ms on a loaded machine: tests that need a VALID Server target use
RetinaNet's 100 ms bound, where that noise does not decide the verdict."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fleet.harness.runner import RunContext
from fleet.harness.tasks import get_task

PER_BATCH_S = 0.002
PER_SAMPLE_S = 0.002


class SleepBackend:
    """Answers with fixed outputs after PER_BATCH_S + n x PER_SAMPLE_S."""

    def __init__(self, inner: Any, ctx: RunContext) -> None:
        self.inner = inner
        self.name, self.threads, self.execution_provider = inner.name, inner.threads, inner.execution_provider
        self.needs_feed = False
        self._task = get_task(ctx.task)

    per_batch_s = PER_BATCH_S
    per_sample_s = PER_SAMPLE_S

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        time.sleep(self.per_batch_s + self.per_sample_s * n)
        return self._task.null_outputs(n)

    def versions(self) -> dict[str, str]:
        return self.inner.versions()

    def close(self) -> None:
        self.inner.close()


class RetinaSleepBackend(SleepBackend):
    """6 ms per image (RetinaNet runs batch 1): ~165 images/s, VALID up to ~90 % of that."""

    per_batch_s = 0.001
    per_sample_s = 0.005
