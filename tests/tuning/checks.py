"""Assertions shared by the harness-level and fleet-level tuning tests."""

from __future__ import annotations

from typing import Any

import pytest


def assert_confirmed(rec: dict[str, Any], best_qps: float, margin: float) -> None:
    """The stored target is the last confirmation run's, VALID, at most best x (1 - margin)."""
    confirms = [t for t in rec["trials"] if t["kind"] == "confirm"]
    assert confirms and confirms[-1]["validity"] == "VALID"
    bound = rec["server_search"]["latency_bound_ms"]
    assert all(t["validity"] != "VALID" or t["p99_ms"] > bound for t in confirms[:-1])
    target = rec["tuning"]["server_target_qps"]
    assert target == pytest.approx(confirms[-1]["conf"]["target_qps"], abs=1e-3)
    assert confirms[0]["conf"]["target_qps"] == pytest.approx(best_qps * (1 - margin))
    assert target <= best_qps * (1 - margin) + 1e-3


