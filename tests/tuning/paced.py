"""Backends whose time per batch is fixed by sleeping (sleeping needs no CPU), so the Server
limit a test meets is set by queueing, not by how busy the two shared cores are. Waking up
still takes up to ~10 ms on a loaded machine: tests that need a VALID Server target use
RetinaNet's 100 ms bound, where that noise does not decide the verdict."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from harnessenv import WrappedBackend

from fleet.harness.runner import RunContext
from fleet.harness.tasks import get_task

PER_BATCH_S = 0.002
PER_SAMPLE_S = 0.002


class SleepBackend(WrappedBackend):
    """Answers with fixed outputs after PER_BATCH_S + n x PER_SAMPLE_S."""

    needs_feed = False
    per_batch_s = PER_BATCH_S
    per_sample_s = PER_SAMPLE_S

    def __init__(self, inner: Any, ctx: RunContext) -> None:
        super().__init__(inner)
        self._task = get_task(ctx.task)

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        time.sleep(self.per_batch_s + self.per_sample_s * n)
        return self._task.null_outputs(n)


class RetinaSleepBackend(SleepBackend):
    """6 ms per image (RetinaNet runs batch 1): ~165 images/s, VALID up to ~90 % of that."""

    per_batch_s = 0.001
    per_sample_s = 0.005
