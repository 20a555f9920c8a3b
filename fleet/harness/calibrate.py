"""Measure the backend on this node before a run, so the harness needs no tuning flags.

LoadGen must be told what to expect: Offline issues `expected_qps x duration x 1.1` samples
(too few and the run ends INVALID under min_duration), SingleStream/MultiStream pre-generate
queries from the expected latency (too few and LoadGen errors out), Server runs at a target
QPS within a latency bound. The harness measures the real backend on real loaded samples
through the same gather/run/postprocess path the SUT uses, after a warm-up run, for at least
`budget_s` per batch size (short bursts overestimate a CFS-throttled node).

Samples that differ in size (ragged: 3D-UNet cases, RNN-T utterances) are measured in turn,
a whole pass over the loaded ones when it fits, but never past `max_s` per batch size: a
task whose samples take seconds (GPT-J's generation) would otherwise spend minutes per batch
size before its first run. Each Point says how many runs and samples it saw and whether the
bound cut it, and the plan carries that into the manifest.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from fleet.harness.errors import HarnessError, one_line
from fleet.harness.qsl import RunErrors, SampleStore
from fleet.harness.sut import build_responses, inference_call
from fleet.harness.tasks.base import Task

CALIBRATION_SAMPLES = 64
MAX_RUNS = 2000
# A bigger batch must beat the best so far by this much to count as better.
MIN_GAIN = 1.02


def _response_type() -> Any:
    from fleet.harness.loadgen_runner import loadgen

    return loadgen().QuerySampleResponse


@dataclass(frozen=True)
class Point:
    """One batch size measured: median seconds per batch and samples per second."""

    batch: int
    latency_s: float
    throughput: float
    runs: int = 0  # timed runs (after the warm-up)
    samples: int = 0  # distinct loaded samples they covered
    seconds: float = 0.0  # time the timed runs took
    bounded: bool = False  # max_s ended the measurement before a pass over ragged samples

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "latency_ms": round(self.latency_s * 1e3, 4),
                "samples_per_s": round(self.throughput, 4), "runs": self.runs, "samples": self.samples,
                "seconds": round(self.seconds, 3), "bounded": self.bounded}


class Calibrator:
    def __init__(self, task: Task, backend: Any, budget_s: float, max_s: float | None = None) -> None:
        self.task = task
        self.backend = backend
        self.budget_s = budget_s
        # The most one batch size's timed runs may take (None: a whole ragged pass, however long).
        self.max_s = max_s
        self._points: dict[int, Point] = {}
        self._store: SampleStore | None = None
        self._loaded: np.ndarray | None = None

    def _prepare(self) -> None:
        if self._store is not None:
            return
        errors = RunErrors()
        self._store = SampleStore(self.task, errors)
        count = min(self.task.total_sample_count, CALIBRATION_SAMPLES)
        self._loaded = np.arange(count, dtype=np.int64)
        if getattr(self.backend, "needs_feed", True):
            self._store.load(self._loaded.tolist())
        if errors.count:
            raise HarnessError(f"cannot load samples to measure the backend: {errors.summary()}")

    def measure(self, batch: int) -> Point:
        """Throughput and latency at this batch size (memoised for the process)."""
        if batch in self._points:
            return self._points[batch]
        self._prepare()
        assert self._store is not None and self._loaded is not None
        indices = self._loaded[np.arange(batch) % len(self._loaded)]
        needs_feed = getattr(self.backend, "needs_feed", True)

        ids = [0] * batch
        response = _response_type()
        infer = inference_call(self.task, self.backend)
        # Samples that differ in size (ragged) are measured in turn, so the median is a typical
        # sample's cost rather than the first one's.
        turns = itertools.count()
        ragged = self.task.ragged_samples

        seen: set[int] = set()

        def once() -> None:  # the SUT's path, up to QuerySamplesComplete
            rows = indices
            if ragged:
                rows = self._loaded[(next(turns) * batch + np.arange(batch)) % len(self._loaded)]
            seen.update(int(r) for r in rows)
            feed = self._store.feed(rows) if needs_feed else {}
            outputs = infer(feed, batch)
            build_responses(response, ids, self.task.postprocess(outputs, batch, indices=rows))

        try:
            if not self._points:
                once()  # warm-up: the first runs allocate and pick kernels
            times: list[float] = []
            seen.clear()
            start = time.perf_counter()
            # Ragged samples: one pass over the loaded ones, whatever the budget, unless max_s ends it.
            min_runs = max(1, len(self._loaded) // batch) if ragged else 1
            bounded = False
            while True:
                spent = time.perf_counter() - start
                if len(times) >= min_runs and (spent >= self.budget_s or len(times) >= MAX_RUNS):
                    break
                if times and self.max_s is not None and spent >= self.max_s:
                    bounded = len(times) < min_runs
                    break
                t0 = time.perf_counter()
                once()
                times.append(time.perf_counter() - t0)
            spent = time.perf_counter() - start
        except Exception as exc:
            raise HarnessError(f"the backend fails on a batch of {batch}: {type(exc).__name__}: "
                               f"{one_line(exc, 300)}") from None
        runs = len(times)
        if len(times) > 2:
            times = times[1:]  # a new batch size may still grow buffers on its first run
        latency = float(np.median(times))
        point = Point(batch, latency, batch * len(times) / max(sum(times), 1e-9), runs=runs,
                      samples=len(seen), seconds=spent, bounded=bounded)
        self._points[batch] = point
        return point

    def best_batch(self, candidates: list[int], max_latency_s: float | None = None) -> Point:
        """Climb the candidate batch sizes while throughput improves (one step of patience).

        With `max_latency_s`, a batch whose latency exceeds it ends the climb (Server).
        """
        best: Point | None = None
        misses = 0
        for batch in candidates:
            point = self.measure(batch)
            if max_latency_s is not None and point.latency_s > max_latency_s and best is not None:
                break
            if best is None or point.throughput > best.throughput * MIN_GAIN:
                best, misses = point, 0
            else:
                misses += 1
                if misses > 1:
                    break
        assert best is not None
        return best
