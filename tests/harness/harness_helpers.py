"""Helpers for the harness tests (assets handle, harness factory, fault-injecting backend)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from harnessenv import Assets, WrappedBackend

from fleet.harness.runner import Harness, RunContext
from fleet.harness.spec import RunSpec, Tuning


def make_harness(assets: Assets, out: Path, scenarios: list[str], modes: list[str], **kwargs: Any) -> Harness:
    tuning = kwargs.pop("tuning", Tuning())
    spec = RunSpec(task="resnet50", scenarios=scenarios, modes=modes, model=str(assets.model),
                   dataset=str(assets.dataset), profile="smoke", tuning=tuning)
    return Harness(spec, out, echo=lambda line: None, **kwargs)


# -- fault injection for the compliance tests ---------------------------------------------------

PACE_S = 0.2  # seconds per Offline batch of PACED_BATCH: well above the compute time even on busy cores
PACED_BATCH = 8
PACED_QPS = PACED_BATCH / PACE_S


@dataclass
class Faults:
    """Which fault the wrapped backend injects in which mode (set by a test between runs)."""

    wrong_answers_in: set[str] = field(default_factory=set)  # ArgMax + 1
    cache_results_in: set[str] = field(default_factory=set)  # answer repeated samples from a cache
    slow_in: set[str] = field(default_factory=set)  # 1.5x slower


class PacedBackend(WrappedBackend):
    """Real inference padded to a fixed time per batch, plus the faults a test asks for."""

    def __init__(self, inner: Any, ctx: RunContext, faults: Faults) -> None:
        super().__init__(inner)
        self.ctx = ctx
        self.faults = faults
        self._cache: dict[bytes, dict[str, np.ndarray]] = {}

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        mode = self.ctx.mode
        start = time.perf_counter()
        if mode in self.faults.cache_results_in:
            keys = [feed["input_tensor:0"][i].tobytes()[:4096] for i in range(n)]
            if all(k in self._cache for k in keys):
                return {"ArgMax:0": np.concatenate([self._cache[k]["ArgMax:0"] for k in keys])}
        out = self.inner.run(feed, n)
        if mode in self.faults.cache_results_in:
            for i, k in enumerate(keys):
                self._cache[k] = {"ArgMax:0": out["ArgMax:0"][i : i + 1]}
        if mode in self.faults.wrong_answers_in:
            out = {"ArgMax:0": out["ArgMax:0"] % 1000 + 1}
        pace = PACE_S * n / PACED_BATCH * (1.5 if mode in self.faults.slow_in else 1.0)
        left = pace - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        return out
