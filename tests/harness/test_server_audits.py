"""Server audits run at a target their verification accepts, and an INVALID one once more lower.

The SUT is the small model padded to a fixed time per batch, at a light load, so a VALID run
does not depend on what else the two cores do; a test stalls every batch of one audit's
first try, as the accuracy logging's cost did on a node that ran close to its bound. The runs
are 662 queries, not smoke's 459: at 459 LoadGen's early stopping allows no query over the
bound, and one scheduling hiccup on a shared machine (15.18 ms against 15 in a clean-clone CI,
p99 6.8 ms) failed the retry this module checks; at 662 it allows one. A later clean-clone CI
failed the retry again, deep in the suite: a full collection of the pytest process's heap
(150 ms and more) had landed inside the run. The harness now freezes the heap for each
LoadGen test (fleet/harness/heap.py), and a test here checks that it does.
"""

from __future__ import annotations

import gc
import re
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from harness_helpers import make_harness
from harnessenv import WrappedBackend

from fleet.harness.detail_log import read_detail
from fleet.harness.rules import v3_1 as rules
from fleet.harness.runner import RunContext
from fleet.harness.spec import Tuning

pytestmark = pytest.mark.timeout(600)

TARGET_QPS = 60.0  # 662 queries in 11 s
BATCH_S = 0.003  # per batch of one: 18 % of the schedule at 60 QPS
STALL_S = 0.03  # per batch: twice the 15 ms bound, the queue grows
BOUND_MS = rules.MODELS["resnet"].server_latency_ns / 1e6
SMOKE = rules.PROFILES["smoke"]
ONE_OUTLIER = replace(SMOKE, min_query_count={**SMOKE.min_query_count, "Server": 662})


class Stalling(WrappedBackend):
    """Real inference padded to BATCH_S, or to STALL_S on the tries listed in `stalls`."""

    def __init__(self, inner: Any, stall: bool, frozen: list[int] | None = None) -> None:
        super().__init__(inner)
        self.pace = STALL_S if stall else BATCH_S
        self.frozen = frozen  # gets the frozen object count at each inference (which walks them all)

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        if self.frozen is not None:
            self.frozen.append(gc.get_freeze_count())
        out = self.inner.run(feed, n)
        left = self.pace * n - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        return out


@pytest.fixture(scope="module")
def audited(small_assets, tmp_path_factory):
    """Server performance + accuracy, then TEST04, TEST05 and TEST01 (first TEST01 try stalled)."""
    out = tmp_path_factory.mktemp("server-audits")
    tries: dict[str, int] = {}
    stalls = {("TEST01", 1)}
    frozen: list[int] = []  # objects the collector skips, at each inference of the untimed run

    def wrap(inner: Any, ctx: RunContext) -> Any:
        tries[ctx.mode] = tries.get(ctx.mode, 0) + 1
        seen = frozen if ctx.mode == "accuracy" else None
        return Stalling(inner, (ctx.mode, tries[ctx.mode]) in stalls, seen)

    lines: list[str] = []
    modes = ["performance", "accuracy", *rules.COMPLIANCE_TESTS]
    harness = make_harness(small_assets, out, ["Server"], modes, profile=ONE_OUTLIER,
                           tuning=Tuning(threads=1, server_target_qps=TARGET_QPS, server_max_batch=1),
                           wrap_backend=wrap)
    harness.echo = lines.append
    entries = {mode: harness.run_one("Server", mode)
               for mode in ("performance", "accuracy", "TEST04", "TEST05", "TEST01")}
    harness.backend.close()
    return {"out": out, "entries": entries, "tries": tries, "lines": lines, "frozen": frozen}


def _target(audited, mode: str) -> float:
    run = "performance/run_1" if mode == "performance" else f"{mode}/performance/run_1"
    user = (audited["out"] / "resnet50/Server" / run / "user.conf").read_text()
    return float(re.search(r"^resnet50\.Server\.target_qps = (\S+)$", user, re.M).group(1))


def test_each_audit_runs_at_its_share_of_the_performance_target(audited):
    entries = audited["entries"]
    perf = entries["performance"]
    assert perf["result_validity"] == "VALID", perf
    reference = perf["target_qps"]  # TARGET_QPS, or 0.75 of it if an outlier failed the first try
    assert _target(audited, "performance") == pytest.approx(reference)
    for mode in ("TEST04", "TEST05"):
        shares = rules.SERVER_AUDIT_TARGETS[mode]
        entry = entries[mode]
        assert entry["outcome"] == "ok", entry["error"]
        assert entry["verify"] == "TEST PASS"
        # At 662 queries two over the bound fail early stopping, so hiccups on a shared
        # machine may still cost the first try; the retry is then at its share.
        tried = [a["target_qps"] for a in entry["attempts"]] + [entry["target_qps"]]
        assert tried == pytest.approx([reference * s for s in (shares.first, shares.retry)][: len(tried)],
                                      rel=1e-4), entry["attempts"]
        assert audited["tries"][mode] == len(tried)
        run_dir = audited["out"] / "resnet50/Server" / mode / "performance/run_1"
        assert _target(audited, mode) == pytest.approx(tried[-1], rel=1e-4)
        detail = read_detail(run_dir / "mlperf_log_detail.txt")
        assert detail.get("effective_target_qps") == pytest.approx(tried[-1], rel=1e-4)


def test_an_invalid_audit_runs_once_more_at_its_retry_share_and_passes(audited):
    entry = audited["entries"]["TEST01"]
    shares = rules.SERVER_AUDIT_TARGETS["TEST01"]
    assert audited["tries"]["TEST01"] == 2
    (first,) = entry["attempts"]
    assert first["result_validity"] == "INVALID"
    reference = audited["entries"]["performance"]["target_qps"]
    assert first["target_qps"] == pytest.approx(reference * shares.first, rel=1e-4)
    assert first["p99_ms"] > BOUND_MS and "early stopping not satisfied" in first["loadgen_said"]
    assert entry["outcome"] == "ok", entry["error"]
    assert entry["result_validity"] == "VALID"
    assert entry["target_qps"] == pytest.approx(reference * shares.retry, rel=1e-4)
    assert _target(audited, "TEST01") == pytest.approx(reference * shares.retry, rel=1e-4)
    assert entry["verify"] == "TEST PASS"
    test_dir = audited["out"] / "resnet50/Server/TEST01"
    assert "TEST PASS" in (test_dir / "verify_accuracy.txt").read_text()
    said = [line for line in audited["lines"] if "once more" in line]
    expected = f"TEST01: INVALID; once more at {reference * shares.retry:.4g} QPS"
    assert any(expected in line for line in said), said


def test_every_timed_inference_runs_with_the_heap_frozen(audited):
    """A full collection of the test process's heap takes far longer than the 15 ms bound; the
    objects that were there before a LoadGen test are kept out of every pass during it (seen in
    the accuracy run, which takes the same path as the timed ones and has no bound to miss)."""
    assert audited["frozen"] and min(audited["frozen"]) > 10_000
    assert gc.get_freeze_count() == 0  # handed back after each test


def test_audit_shares_stay_inside_what_verification_accepts():
    """Completed samples/s follow the target: each share must pass its test's threshold with room."""
    room = 0.02
    for test, shares in rules.SERVER_AUDIT_TARGETS.items():
        threshold = rules.VERIFY_THRESHOLDS[test].threshold
        assert shares.retry < shares.first <= 1.0, test
        if test in ("TEST01", "TEST05"):  # two-sided, and one-sided from below
            assert shares.retry >= 1 - threshold + room, test
        assert shares.first < 1 + threshold - room, test


def test_an_audit_of_an_invalid_performance_run_is_refused_before_it_runs(small_assets, tmp_path):
    harness = make_harness(small_assets, tmp_path, ["Server"], ["performance", "TEST05"],
                           tuning=Tuning(threads=1, server_target_qps=TARGET_QPS, server_max_batch=1),
                           wrap_backend=lambda inner, ctx: Stalling(inner, stall=True))
    try:
        perf = harness.run_one("Server", "performance")
        assert perf["result_validity"] == "INVALID"
        started = time.monotonic()
        entry = harness.run_one("Server", "TEST05")
    finally:
        harness.backend.close()
    assert time.monotonic() - started < 5  # no LoadGen run
    assert entry["outcome"] == "failed"
    assert "which is not VALID" in entry["error"] and "no audit of it can pass" in entry["error"]
