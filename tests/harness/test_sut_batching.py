"""How the SUTs cut a query into batches (no LoadGen: a fake one, a recording engine)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from fleet.harness.sut import InlineSUT, OfflineSUT, ServerSUT


class FakeLoadGen:
    @staticmethod
    def ConstructFastSUT(issue: Any, flush: Any) -> object:
        return object()

    @staticmethod
    def DestroyFastSUT(handle: object) -> None:
        pass


class RecordingEngine:
    """Engine.process as the SUTs see it; records each batch's ids and QSL indices."""

    def __init__(self, rows: int, needs_feed: bool = True) -> None:
        self.needs_feed = needs_feed
        self.store = type("Store", (), {"row_of": np.arange(rows, dtype=np.int64)})()
        self.batches: list[tuple[list[int], list[int]]] = []

    def process(self, ids: list[int], indices: np.ndarray) -> None:
        self.batches.append((list(ids), indices.tolist()))


def test_inline_cuts_in_issue_order() -> None:
    engine = RecordingEngine(8)
    sut = InlineSUT(engine, 2, FakeLoadGen())  # type: ignore[arg-type]
    sut.issue([10, 11, 12, 13, 14], [4, 1, 4, 0, 3])
    assert engine.batches == [([10, 11], [4, 1]), ([12, 13], [4, 0]), ([14], [3])]


def test_offline_cuts_in_round_robin_order() -> None:
    engine = RecordingEngine(8)
    sut = OfflineSUT(engine, 3, FakeLoadGen())  # type: ignore[arg-type]
    sut._run_batches([10, 11, 12, 13, 14], [4, 1, 4, 0, 3])
    sut.stop()
    assert engine.batches == [([13, 11, 14], [0, 1, 3]), ([10, 12], [4, 4])]


def test_offline_keeps_issue_order_without_a_feed() -> None:
    engine = RecordingEngine(8, needs_feed=False)
    sut = OfflineSUT(engine, 3, FakeLoadGen())  # type: ignore[arg-type]
    sut._run_batches([10, 11, 12, 13], [4, 1, 4, 0])
    sut.stop()
    assert engine.batches == [([10, 11, 12], [4, 1, 4]), ([13], [0])]


class GatedEngine(RecordingEngine):
    """Holds the first batch until released, so later samples pile up in the Server queue."""

    def __init__(self, rows: int) -> None:
        super().__init__(rows)
        self.gate = threading.Event()
        self.started = threading.Event()

    def process(self, ids: list[int], indices: np.ndarray) -> None:
        self.started.set()
        self.gate.wait(10)
        super().process(ids, indices)


def test_server_batches_what_waited_up_to_max_batch_and_drains_on_stop() -> None:
    engine = GatedEngine(8)
    sut = ServerSUT(engine, 3, FakeLoadGen())  # type: ignore[arg-type]
    sut.issue([10], [4])
    assert engine.started.wait(10)  # the batcher is busy with sample 10 alone
    for qid, idx in ((11, 1), (12, 4), (13, 0), (14, 3)):
        sut.issue([qid], [idx])
    engine.gate.set()
    sut.stop()  # every issued sample is processed before the batcher ends
    assert engine.batches == [([10], [4]), ([11, 12, 13], [1, 4, 0]), ([14], [3])]


def test_server_fill_timeout_waits_for_a_fuller_batch() -> None:
    engine = RecordingEngine(8)
    sut = ServerSUT(engine, 4, FakeLoadGen(), timeout_s=5.0)  # type: ignore[arg-type]
    sut.issue([10], [4])
    time.sleep(0.05)  # inside the fill window: the batcher is still waiting for more
    assert engine.batches == []
    sut.issue([11, 12, 13], [1, 4, 0])  # a multi-sample issue is queued sample by sample
    deadline = time.monotonic() + 10
    while not engine.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    sut.stop()
    assert engine.batches == [([10, 11, 12, 13], [4, 1, 4, 0])]


def test_server_fill_timeout_sends_a_partial_batch_when_it_expires() -> None:
    engine = RecordingEngine(8)
    sut = ServerSUT(engine, 4, FakeLoadGen(), timeout_s=0.05)  # type: ignore[arg-type]
    sut.issue([10], [4])
    deadline = time.monotonic() + 10
    while not engine.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    sut.stop()
    assert engine.batches == [([10], [4])]
