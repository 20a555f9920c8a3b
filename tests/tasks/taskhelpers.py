"""Harness helpers for the RetinaNet/BERT tests: a Harness on synthetic assets, a paced backend.

Offline validity (enough samples for min_duration) and the compliance tests (an audit run
against a performance run) must not follow the load of a shared machine, which swings 5x
between a measurement and the run it plans: the paced backend runs real inference and then
sleeps until a fixed time per sample has passed (inference on these synthetic models takes
a few milliseconds; the pace leaves room for a busy machine).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.runner import Harness, RunContext
from fleet.harness.spec import RunSpec, Tuning


class PacedBackend:
    """Real inference, in Offline padded to `pace_s` per sample; corrupts outputs in some modes."""

    def __init__(self, inner: Any, ctx: RunContext, pace_s: float, corrupt: dict[str, Any]) -> None:
        self.inner = inner
        self.ctx = ctx
        self.pace_s = pace_s if ctx.scenario == "Offline" else 0.0
        self.corrupt = corrupt
        self.name, self.threads = inner.name, inner.threads
        self.execution_provider, self.needs_feed = inner.execution_provider, True

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        out = self.inner.run(feed, n)
        if self.ctx.mode in self.corrupt:
            out = self.corrupt[self.ctx.mode](out)
        left = self.pace_s * n - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        return out

    def versions(self) -> dict[str, str]:
        return self.inner.versions()

    def close(self) -> None:
        self.inner.close()


def make_harness(
    task: str,
    marker_root: Path,
    marker: dict[str, Any],
    out: Path,
    scenarios: list[str],
    modes: list[str],
    **kwargs: Any,
) -> Harness:
    spec = RunSpec(
        task=task,
        scenarios=scenarios,
        modes=modes,
        model=str(marker_root / marker["model"]["file"]),
        dataset=str(marker_root / marker["dataset"]["dir"]),
        profile="smoke",
        # One intra-op thread: on a shared 2-core machine two spinning onnxruntime threads
        # turn other processes' load into 10x tail latencies (Server's p99 bound).
        tuning=replace(kwargs.pop("tuning", Tuning()), threads=1),
    )
    return Harness(spec, out, echo=lambda line: None, **kwargs)


def paced(pace_s: float, corrupt: dict[str, Any] | None = None):
    """A wrap_backend for Harness: Offline paced, `corrupt[mode](outputs)` applied in that mode."""
    return lambda inner, ctx: PacedBackend(inner, ctx, pace_s, corrupt or {})
