"""An INVALID performance run is tried again with what it measured itself (planning.replan_after)."""

from __future__ import annotations

import pytest
from harness_helpers import make_harness

from fleet.harness.planning import (
    SERVER_RETRY_SHARE,
    SHORT_RUN_RETRIES,
    ScenarioPlan,
    replan_after,
    retries_for,
)
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning

SMOKE = rules.PROFILES["smoke"]


def test_offline_that_ran_out_of_samples_expects_what_it_ran() -> None:
    plan = ScenarioPlan("Offline", 8, conf={"target_qps": 14.9})  # 7.45/s measured under contention
    detail = {"result_min_duration_met": False, "result_samples_per_second": 34.66}
    again, why = replan_after(plan, detail, SMOKE)
    assert again.conf["target_qps"] == pytest.approx(34.66 * SMOKE.offline_qps_margin)
    assert again.batch_size == 8 and plan.conf["target_qps"] == 14.9  # the old plan is untouched
    assert "ran out of samples before min_duration" in why


def test_single_stream_that_ran_out_of_queries_expects_its_mean_latency() -> None:
    plan = ScenarioPlan("SingleStream", 1, conf={"target_latency": 400.0})
    detail = {"result_min_duration_met": False, "result_mean_latency_ns": 90e6}
    again, _ = replan_after(plan, detail, SMOKE)
    assert again.conf["target_latency"] == pytest.approx(90 * SMOKE.latency_margin)


def test_only_runs_shorter_than_min_duration_are_retried_more_than_once() -> None:
    assert retries_for("Server", audit=False) == retries_for("Server", audit=True) == 1
    assert retries_for("Offline", audit=False) == SHORT_RUN_RETRIES > 1
    assert retries_for("SingleStream", audit=False) == SHORT_RUN_RETRIES


def test_server_whose_latency_failed_steps_down_once() -> None:
    plan = ScenarioPlan("Server", 1, conf={"target_qps": 20.0})
    again, why = replan_after(plan, {"early_stopping_met": False}, SMOKE)
    assert again.conf["target_qps"] == pytest.approx(20.0 * SERVER_RETRY_SHARE)
    assert "latency percentile failed at 20 QPS" in why


@pytest.mark.parametrize("plan, detail", [
    # cut short by the smoke bound: INVALID by design, a retry changes nothing
    (ScenarioPlan("Server", 1, conf={"target_qps": 0.3}, bounded="cut to 36"), {"early_stopping_met": False}),
    # already expecting more than it ran: something else is wrong
    (ScenarioPlan("Offline", 8, conf={"target_qps": 100.0}),
     {"result_min_duration_met": False, "result_samples_per_second": 20.0}),
    # INVALID for a reason that is not the expectation's
    (ScenarioPlan("Offline", 8, conf={"target_qps": 10.0}), {"result_min_duration_met": True}),
])
def test_nothing_to_retry(plan, detail) -> None:
    assert replan_after(plan, detail, SMOKE) is None


def test_an_offline_run_expecting_far_too_little_is_run_again_and_ends_valid(small_assets, tmp_path) -> None:
    """Told 2 samples/s (so LoadGen issues 8 samples, a few ms of work): INVALID, then VALID."""
    harness = make_harness(small_assets, tmp_path, ["Offline"], ["performance", "accuracy"],
                           tuning=Tuning(threads=1, batch_size=8, offline_expected_qps=2.0))
    lines: list[str] = []
    harness.echo = lines.append
    try:
        entry = harness.run_one("Offline", "performance")
        accuracy = harness.run_one("Offline", "accuracy")
    finally:
        harness.backend.close()
    # A rate measured on 8 samples is mostly fixed costs: a retry may run out again, and
    # each one expects more than the last (it measured a longer run).
    first, *later = entry["attempts"]
    assert first["result_validity"] == "INVALID" and first["target_qps"] == 2.0
    assert len(later) < SHORT_RUN_RETRIES
    expected = [a["target_qps"] for a in entry["attempts"]]
    assert expected == sorted(set(expected))
    assert entry["outcome"] == "ok" and entry["result_validity"] == "VALID"
    assert any("ran out of samples before min_duration" in line for line in lines)
    assert accuracy["outcome"] == "ok" and accuracy["attempts"] == []


def test_a_profile_without_retries_records_the_invalid_run_as_it_was(small_assets, tmp_path) -> None:
    """The tuner's trials: one measurement of the target they name, never a retry at another."""
    import dataclasses

    profile = dataclasses.replace(rules.PROFILES["smoke"], retry_invalid=False)
    harness = make_harness(small_assets, tmp_path, ["Offline"], ["performance"], profile=profile,
                           tuning=Tuning(threads=1, batch_size=8, offline_expected_qps=2.0))
    try:
        entry = harness.run_one("Offline", "performance")
    finally:
        harness.backend.close()
    assert entry["result_validity"] == "INVALID" and entry["attempts"] == []


def test_the_tuners_trial_profile_never_retries() -> None:
    from fleet.harness.tuning.tuner import trial_profile

    assert trial_profile(SMOKE).retry_invalid is False and SMOKE.retry_invalid is True
