"""How the SUTs cut a query into batches (no LoadGen: a fake one, a recording engine)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fleet.harness.sut import InlineSUT, OfflineSUT


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
