"""Pure tests of the tuning searches against synthetic oracles."""

from __future__ import annotations

import itertools

import pytest

from fleet.harness.errors import HarnessError
from fleet.harness.tuning.search import KnobTrial, ServerTrial, search_knobs, search_server_qps
from fleet.harness.tuning.tuner import confirm_server_target


def threshold_oracle(limit: float, calls: list[float]):
    def trial(qps: float) -> ServerTrial:
        calls.append(qps)
        return ServerTrial(target_qps=qps, valid=qps <= limit)

    return trial


@pytest.mark.parametrize("start", [1.0, 37.0, 80.0, 400.0])
def test_server_search_brackets_the_limit(start: float) -> None:
    calls: list[float] = []
    result = search_server_qps(threshold_oracle(80.0, calls), start, tolerance=0.02, max_trials=30)
    assert result.stopped_by == "converged"
    assert result.best is not None and result.best.valid
    assert result.ceiling is not None and not result.ceiling.valid
    assert result.best.target_qps <= 80.0 < result.ceiling.target_qps
    assert (result.ceiling.target_qps - result.best.target_qps) / result.best.target_qps <= 0.02
    # Both ends of the bracket were really tried.
    assert result.best.target_qps in calls and result.ceiling.target_qps in calls
    assert result.recommended_qps == pytest.approx(result.best.target_qps * 0.95)


def test_server_search_respects_max_trials_and_keeps_best_valid() -> None:
    calls: list[float] = []
    result = search_server_qps(threshold_oracle(1000.0, calls), 1.0, max_trials=4)
    assert result.stopped_by == "max_trials"
    assert len(calls) == 4
    assert result.best is not None and result.best.valid and result.ceiling is None


def test_server_search_gives_up_below_floor() -> None:
    result = search_server_qps(lambda q: ServerTrial(q, False), 1.0, min_qps=0.1, max_trials=50)
    assert result.best is None and result.recommended_qps is None
    assert result.stopped_by == "floor"


def test_server_search_budget_uses_clock() -> None:
    ticks = itertools.count()
    result = search_server_qps(
        lambda q: ServerTrial(q, True), 1.0, budget_s=3, clock=lambda: float(next(ticks))
    )
    assert result.stopped_by == "budget"


def test_server_search_rejects_bad_start() -> None:
    with pytest.raises(ValueError):
        search_server_qps(lambda q: ServerTrial(q, True), 0.0)


def test_knob_search_finds_the_peak_and_ignores_noise() -> None:
    def measure(settings):
        score = 100 - (settings["batch"] - 8) ** 2 - 3 * abs(settings["threads"] - 2)
        return KnobTrial(settings, float(score))

    result = search_knobs(
        measure, {"batch": [1, 2, 4, 8, 16, 32], "threads": [1, 2]}, {"batch": 1, "threads": 1}, max_trials=30
    )
    assert result.best is not None
    assert dict(result.best.settings) == {"batch": 8, "threads": 2}
    assert len({tuple(sorted(t.settings.items())) for t in result.trials}) == len(result.trials)


def test_knob_search_skips_invalid_candidates() -> None:
    def measure(settings):
        return KnobTrial(settings, float(settings["batch"]), valid=settings["batch"] <= 4)

    result = search_knobs(measure, {"batch": [1, 2, 4, 8]}, {"batch": 1})
    assert result.best is not None and result.best.settings["batch"] == 4


def test_ordered_knob_climbs_to_the_peak_without_sweeping() -> None:
    ladder = [1, 2, 4, 8, 16, 32, 64, 128]
    tried: list[int] = []

    def measure(settings):
        tried.append(settings["batch"])
        return KnobTrial(settings, float(-abs(ladder.index(settings["batch"]) - 4)))  # peak at 16

    result = search_knobs(measure, {"batch": ladder}, {"batch": 2}, ordered={"batch"}, max_trials=30)
    assert result.best is not None and result.best.settings["batch"] == 16
    # 2 -> 1 (worse) and 4 (better) -> 8 -> 16 -> 32 (worse): never 64 or 128.
    assert sorted(tried) == [1, 2, 4, 8, 16, 32]


def test_ordered_knob_swept_when_the_incumbent_is_off_the_list() -> None:
    result = search_knobs(
        lambda s: KnobTrial(s, float(s["batch"])), {"batch": [1, 2, 4]}, {"batch": 3}, ordered={"batch"}
    )
    assert result.best is not None and result.best.settings["batch"] == 4
    assert len(result.trials) == 4


def test_knob_search_stops_on_max_trials_but_reuses_measured_configs() -> None:
    calls: list[dict] = []

    def measure(settings):
        calls.append(dict(settings))
        return KnobTrial(settings, float(settings["threads"]))

    result = search_knobs(measure, {"threads": [1, 2, 4]}, {"threads": 1}, ordered={"threads"}, max_trials=2)
    assert result.stopped_by == "max_trials"
    assert len(calls) == 2 and result.best is not None and result.best.settings["threads"] == 2


def test_server_search_gives_up_when_lower_targets_cannot_help() -> None:
    calls: list[float] = []

    def trial(qps: float) -> ServerTrial:
        calls.append(qps)
        return ServerTrial(qps, False, p99_latency_ms=40.0)

    result = search_server_qps(trial, 100.0, hopeless=lambda t: t.target_qps < 50, max_trials=50)
    assert result.stopped_by == "hopeless" and result.best is None
    assert calls == pytest.approx([100.0, 100 / 1.5, 100 / 1.5**2])
    # Never consulted once a VALID target is known: bisection needs its INVALID trials.
    asked: list[float] = []
    found = search_server_qps(threshold_oracle(80.0, []), 60.0, tolerance=0.02,
                              hopeless=lambda t: asked.append(t.target_qps) or True)
    assert found.stopped_by == "converged" and asked == []


def test_confirmation_backs_off_in_growing_steps_and_stops_at_the_first_valid() -> None:
    calls: list[float] = []

    def trial(qps: float, kind: str) -> ServerTrial:
        assert kind == "confirm"
        calls.append(qps)
        return ServerTrial(target_qps=qps, valid=qps <= 70.0)

    rec: dict = {"measured": {}}
    assert confirm_server_target(100.0, trial, rec) == pytest.approx(100 * 0.95 * 0.9 * 0.8)
    assert calls == pytest.approx([100.0, 95.0, 85.5, 68.4])
    assert [c["valid"] for c in rec["measured"]["confirm_trials"]] == [False, False, False, True]
    calls.clear()
    assert confirm_server_target(60.0, trial, {"measured": {}}) == 60.0 and calls == [60.0]


def test_confirmation_that_never_holds_says_so() -> None:
    rec: dict = {"measured": {}}
    with pytest.raises(HarnessError, match=r"4 confirmation runs, down to 68.4 QPS"):
        confirm_server_target(100.0, lambda qps, kind: ServerTrial(target_qps=qps, valid=False), rec)
    assert len(rec["measured"]["confirm_trials"]) == 4
