"""Calibration of slow ragged samples is bounded in time and says what it measured.

RNN-T's utterances are ragged, so the calibrator measures them in turn, a whole pass when it
fits. Here each sample takes 0.4 s (the null backend behind a pause, as GPT-J's generation
would take seconds): a pass over the 6 loaded utterances would take 2.4 s a batch size, and a
1 s bound cuts it after a few runs and marks the point bounded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from fleet.harness.backends import BackendOptions, open_backend
from fleet.harness.calibrate import Calibrator
from fleet.harness.planning import plan_scenario
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning
from fleet.harness.tasks import get_task

SAMPLE_S = 0.4


class SlowSamples:
    """The null backend, each sample of a batch taking SAMPLE_S."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.threads, self.execution_provider = inner.name, inner.threads, inner.execution_provider
        self.needs_feed, self.max_useful_batch = inner.needs_feed, 1

    def run(self, feed: dict, n: int) -> Any:
        time.sleep(SAMPLE_S * n)
        return self.inner.run(feed, n)

    def pinned(self, call: Any) -> Any:
        return self.inner.pinned(call)


@pytest.fixture(scope="module")
def slow(asset_shelf, tmp_path_factory) -> tuple[Any, Any]:
    assets = asset_shelf.get("rnnt", 6, "small")
    task = get_task("rnnt")
    task.open(assets.dataset, Path(tmp_path_factory.mktemp("rnnt-cache")))
    return task, SlowSamples(open_backend("null", None, task, BackendOptions()))


def test_a_whole_pass_is_measured_when_it_fits(slow) -> None:
    task, backend = slow
    point = Calibrator(task, backend, budget_s=0.1, max_s=None).measure(1)
    assert point.samples == task.total_sample_count == 6 and point.runs == 6 and not point.bounded
    assert point.latency_s == pytest.approx(SAMPLE_S, rel=0.25)


def test_the_bound_ends_the_pass_early_and_the_plan_says_so(slow) -> None:
    task, backend = slow
    calibrator = Calibrator(task, backend, budget_s=0.1, max_s=1.0)
    started = time.monotonic()
    plan = plan_scenario(task, "SingleStream", rules.PROFILES["smoke"], Tuning(), calibrator)
    took = time.monotonic() - started
    assert took < 1.0 + 3 * SAMPLE_S  # warm-up, then runs until the bound: not the 2.4 s pass
    point = plan.calibration
    assert point["bounded"] and point["runs"] == point["samples"] < 6
    assert point["seconds"] >= 1.0 and point["latency_ms"] == pytest.approx(SAMPLE_S * 1e3, rel=0.25)
    margin = rules.PROFILES["smoke"].latency_margin
    assert plan.conf["target_latency"] == pytest.approx(point["latency_ms"] * margin)
