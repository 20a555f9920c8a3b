"""A smoke run stays short on a slow node: its query count is cut to the profile's max_run_s, said so."""

from __future__ import annotations

import dataclasses
import re
import time

from harness_helpers import make_harness
from harnessenv import WrappedBackend

from fleet.harness.planning import ScenarioPlan, bound_run, user_conf_text
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning
from fleet.harness.tasks import get_task

SMOKE = rules.PROFILES["smoke"]
SERVER_MIN = rules.EARLY_STOPPING_MIN_QUERIES["Server"]


def _server(qps: float) -> ScenarioPlan:
    return ScenarioPlan("Server", 1, conf={"target_qps": qps})


def test_a_slow_server_is_cut_to_the_bound_and_told_it_cannot_be_valid():
    plan = _server(0.82)  # what the 3-node lab calibrated for rnnt: 459 queries = 560 s
    bound_run(plan, SMOKE)
    assert plan.min_query_count == int(SMOKE.max_run_s * 0.82)
    assert f"{SERVER_MIN} Server queries" in plan.bounded and "560 s" in plan.bounded
    assert "INVALID by design" in plan.bounded
    conf = user_conf_text(get_task("resnet50"), "Server", SMOKE, plan, None)
    assert f"resnet50.Server.min_query_count = {plan.min_query_count}\n" in conf
    assert f"min_query_count = {SERVER_MIN}" not in conf


def test_a_server_that_fits_keeps_the_early_stopping_minimum():
    plan = _server(14.55)  # alone on a node: 459 queries in 32 s
    bound_run(plan, SMOKE)
    assert plan.min_query_count is None and plan.bounded is None
    conf = user_conf_text(get_task("resnet50"), "Server", SMOKE, plan, None)
    assert f"resnet50.Server.min_query_count = {SERVER_MIN}\n" in conf


def test_the_submission_profile_is_never_cut():
    plan = _server(0.01)
    bound_run(plan, rules.PROFILES["submission"])
    assert plan.min_query_count is None


def test_slow_single_stream_samples_are_cut_too():
    # target_latency is the measured 3 s x the latency margin
    plan = ScenarioPlan("SingleStream", 1, conf={"target_latency": 3000 * SMOKE.latency_margin})
    bound_run(plan, SMOKE)
    assert plan.min_query_count == int(SMOKE.max_run_s / 3)
    assert "INVALID by design" in plan.bounded


class Slow(WrappedBackend):
    def run(self, feed, n):
        time.sleep(0.01 * n)
        return self.inner.run(feed, n)


def test_a_bounded_server_run_ends_in_time_and_says_why_it_is_invalid(small_assets, tmp_path):
    profile = dataclasses.replace(SMOKE, max_run_s=4.0)
    harness = make_harness(small_assets, tmp_path, ["Server"], ["performance"], profile=profile,
                           tuning=Tuning(threads=1, server_target_qps=10.0, server_max_batch=1),
                           wrap_backend=lambda inner, ctx: Slow(inner))
    lines: list[str] = []
    harness.echo = lines.append
    started = time.monotonic()
    try:
        entry = harness.run_one("Server", "performance")
    finally:
        harness.backend.close()
    assert time.monotonic() - started < 30  # 459 queries at 10 QPS would take 46 s
    assert entry["outcome"] == "ok", entry["error"]
    assert entry["result_validity"] == "INVALID"
    assert "cut to 40" in entry["note"] and "INVALID by design" in entry["note"]
    assert "NOTE: smoke profile" in lines[-1]
    user = (tmp_path / entry["dir"] / "user.conf").read_text()
    assert re.search(r"^resnet50\.Server\.min_query_count = 40$", user, re.M)
