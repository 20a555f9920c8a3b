"""Systems under test for the four scenarios, around one inference engine.

Performance rules of the house (what makes the harness match a bare onnxruntime loop):
- ONE thread calls the backend, so onnxruntime's intra-op pool owns the cores; Python
  threads never run inference concurrently.
- Per batch, not per sample: one gather for the feed, one backend call, one vectorised
  postprocess, one QuerySamplesComplete. The only per-sample Python work is building the
  QuerySampleResponse list.
- LoadGen's fast SUT interface (ids and indices as plain int lists).

Robustness rule: every issued sample is completed, even when inference raises. The error is
recorded (the run is then marked failed) and the samples are completed with empty responses,
so LoadGen never waits forever.

SingleStream and MultiStream run inline in LoadGen's issue thread (one query in flight; no
hand-off latency). Offline hands its one big query to a worker that cuts it into batches.
Server queues samples for a dynamic batcher: it takes what is waiting, up to `max_batch`,
after waiting at most `timeout_s` for a batch to fill (0: never wait).
"""

from __future__ import annotations

import collections
import functools
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fleet.harness.qsl import RunErrors, SampleStore
from fleet.harness.tasks.base import Task


def build_responses(response: Any, ids: list[int], payloads: Any) -> tuple[list, Any]:
    """QuerySampleResponse per sample pointing into the payload buffers (kept alive by the caller).

    An ndarray payload is one buffer for the whole batch (row i = sample i); a sequence is one
    buffer per sample, whose sizes may differ.
    """
    n = len(ids)
    if isinstance(payloads, np.ndarray):
        buf = np.ascontiguousarray(payloads)
        if buf.shape[:1] != (n,):
            raise ValueError(f"postprocess returned {buf.shape[:1]} payloads for {n} samples")
        size = buf.nbytes // n if n else 0
        base = buf.ctypes.data
        addresses = range(base, base + n * size, size) if size else itertools.repeat(base, n)
        return list(map(response, ids, addresses, itertools.repeat(size, n))), buf
    if len(payloads) != n:
        raise ValueError(f"postprocess returned {len(payloads)} payloads for {n} samples")
    keep = [np.frombuffer(p, dtype=np.uint8) if isinstance(p, (bytes, bytearray))
            else np.ascontiguousarray(p) for p in payloads]
    pairs = zip(ids, keep, strict=True)
    return [response(qid, a.ctypes.data, a.nbytes) for qid, a in pairs], keep


def inference_call(task: Task, backend: Any) -> Callable[[dict[str, Any], int], Any]:
    """What runs a batch's feed: the backend itself (one call, the fast path), or the task's infer.

    A task that overrides `Task.infer` drives the backend over many calls (sliding window,
    decode loop); a backend without a feed (null) answers for the whole batch at once. The
    call goes through the backend's `pinned` (part of the Backend protocol): a runtime that
    keeps per-thread state (PyTorch's OpenMP pools) runs the whole call on its one thread,
    whichever thread of the SUT asks.
    """
    if getattr(backend, "needs_feed", True) and type(task).infer is not Task.infer:
        call = functools.partial(task.infer, backend)
    else:
        call = backend.run
    return backend.pinned(call)


class Engine:
    """Runs one batch end to end: gather, inference, postprocess, QuerySamplesComplete."""

    def __init__(self, task: Task, backend: Any, store: SampleStore, errors: RunErrors, lg: Any) -> None:
        self.task = task
        self.backend = backend
        self.store = store
        self.errors = errors
        self._lg = lg
        self._response = lg.QuerySampleResponse
        self.needs_feed = bool(getattr(backend, "needs_feed", True))
        self._infer = inference_call(task, backend)

    def process(self, ids: list[int], indices: np.ndarray) -> None:
        n = len(ids)
        try:
            feed = self.store.feed(indices) if self.needs_feed else {}
            payloads = self.task.postprocess(self._infer(feed, n), n, indices=indices)
            self._complete(ids, payloads)
        except Exception as exc:
            self.errors.record("inference", exc)
            self.complete_empty(ids)

    def _complete(self, ids: list[int], payloads: Any) -> None:
        responses, keep = build_responses(self._response, ids, payloads)
        self._lg.QuerySamplesComplete(responses)
        del keep  # the payload buffers must live until LoadGen has copied them

    def complete_empty(self, ids: list[int]) -> None:
        """Complete samples with empty responses (after an error), never raising."""
        try:
            self._lg.QuerySamplesComplete([self._response(qid, 0, 0) for qid in ids])
        except Exception as exc:  # nothing else can be done; LoadGen reports the lost samples
            self.errors.record("completing samples", exc)


class BaseSUT:
    """Common LoadGen plumbing; subclasses implement issue()."""

    def __init__(self, engine: Engine, max_batch: int, lg: Any) -> None:
        self.engine = engine
        self.max_batch = max(1, int(max_batch))
        self.handle = lg.ConstructFastSUT(self._issue_safe, self.flush)
        self._lg = lg

    def _issue_safe(self, ids: list[int], indices: list[int]) -> None:
        try:
            self.issue(ids, indices)
        except Exception as exc:
            self.engine.errors.record("issue", exc)
            self.engine.complete_empty(list(ids))

    def issue(self, ids: list[int], indices: list[int]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def _run_batches(self, ids: list[int], indices: list[int]) -> None:
        """Cut a query into batches of max_batch, in the order `_ordered` gives."""
        ids, idx = self._ordered(ids, np.asarray(indices, dtype=np.int64))
        step = self.max_batch
        for start in range(0, len(ids), step):
            self.engine.process(ids[start : start + step], idx[start : start + step])

    def _ordered(self, ids: list[int], idx: np.ndarray) -> tuple[list[int], np.ndarray]:
        """The query's samples in the order to process them: as issued."""
        return ids, idx

    def stop(self) -> None:
        self._lg.DestroyFastSUT(self.handle)


class InlineSUT(BaseSUT):
    """SingleStream / MultiStream: run the query in LoadGen's issue thread."""

    def issue(self, ids: list[int], indices: list[int]) -> None:
        self._run_batches(ids, indices)


def round_robin_order(rows: np.ndarray) -> np.ndarray:
    """An order of positions that visits every loaded row once, in row order, then again, ...

    Offline issues each loaded sample many times in random order. Processed in this order, a
    batch is usually a run of consecutive rows of the QSL's array, which the gather passes on
    as a view instead of copying. Any order is allowed: Offline has no per-sample timing.
    """
    by_row = np.argsort(rows, kind="stable")
    sorted_rows = rows[by_row]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    counts = np.diff(np.r_[starts, len(rows)])
    occurrence = np.empty(len(rows), dtype=np.int64)
    occurrence[by_row] = np.arange(len(rows)) - np.repeat(starts, counts)
    return np.lexsort((rows, occurrence))


class OfflineSUT(BaseSUT):
    """Offline: one worker thread cuts the query into batches of max_batch (round-robin order)."""

    def _ordered(self, ids: list[int], idx: np.ndarray) -> tuple[list[int], np.ndarray]:
        """Round-robin over the loaded rows, so batches gather as views (see round_robin_order)."""
        if len(idx) <= 1 or not self.engine.needs_feed:
            return ids, idx
        order = round_robin_order(self.engine.store.row_of[idx])
        return np.asarray(ids, dtype=np.uint64)[order].tolist(), idx[order]

    def __init__(self, engine: Engine, max_batch: int, lg: Any) -> None:
        super().__init__(engine, max_batch, lg)
        self._queries: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="fleet-offline", daemon=True)
        self._thread.start()

    def issue(self, ids: list[int], indices: list[int]) -> None:
        with self._cond:
            self._queries.append((list(ids), indices))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queries and not self._stopping:
                    self._cond.wait()
                if not self._queries:
                    return
                ids, indices = self._queries.popleft()
            try:
                self._run_batches(ids, indices)
            except Exception as exc:  # _run_batches completes per batch; this is a last resort
                self.engine.errors.record("offline worker", exc)
                self.engine.complete_empty(ids)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        super().stop()


class ServerSUT(BaseSUT):
    """Server: a queue and a dynamic batcher (max batch, fill timeout) on one thread.

    The queue is a C-level SimpleQueue: LoadGen's issue thread only puts (id, index) pairs,
    without a Python-level lock or notify, and the batcher blocks in get() with the GIL
    released. With a Condition instead, the two threads' lock and wake-up work capped the
    null backend at ~150k samples/s, a third of a bare LoadGen SUT's.
    """

    def __init__(self, engine: Engine, max_batch: int, lg: Any, timeout_s: float = 0.0) -> None:
        super().__init__(engine, max_batch, lg)
        self.timeout_s = max(0.0, float(timeout_s))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop_seen = False
        self._thread = threading.Thread(target=self._loop, name="fleet-server", daemon=True)
        self._thread.start()

    def issue(self, ids: list[int], indices: list[int]) -> None:
        if len(ids) == 1:  # every Server query carries one sample
            self._queue.put((ids[0], indices[0]))
        else:
            for pair in zip(ids, indices, strict=True):
                self._queue.put(pair)

    def _take(self) -> list[tuple[int, int]] | None:
        """What is waiting, up to max_batch; None once stop() was called and all is done."""
        if self._stop_seen:
            return None
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = None
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if self.timeout_s <= 0:
                    break
                if deadline is None:
                    deadline = time.monotonic() + self.timeout_s
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if item is None:  # stop() after these: run them, then end
                self._stop_seen = True
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            ids, indices = zip(*batch, strict=True)
            try:
                self.engine.process(list(ids), np.array(indices, dtype=np.int64))
            except Exception as exc:
                self.engine.errors.record("server batcher", exc)
                self.engine.complete_empty(list(ids))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        super().stop()


def make_sut(scenario: str, engine: Engine, max_batch: int, lg: Any,
             server_timeout_s: float = 0.0) -> BaseSUT:
    if scenario == "Offline":
        return OfflineSUT(engine, max_batch, lg)
    if scenario == "Server":
        return ServerSUT(engine, max_batch, lg, server_timeout_s)
    return InlineSUT(engine, max_batch, lg)
