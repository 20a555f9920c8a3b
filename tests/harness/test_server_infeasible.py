"""A Server scenario that cannot be VALID on this node is said at once, not run for 10 minutes.

The test lowers ResNet50's Server bound below any backend's one-sample latency (a slow CPU
node with the full model against the real 15 ms bound is the same case) and checks that the
harness records every mode of that scenario as `infeasible`, runs no LoadGen for it, and still
runs the other scenarios.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest
from harness_helpers import make_harness

from fleet.harness import cli
from fleet.harness.rules import v3_1 as rules
from fleet.harness.runner import INFEASIBLE


@pytest.fixture
def tiny_server_bound(monkeypatch):
    """ResNet50's Server bound at 1 µs: no backend's median one-sample latency is under it."""
    tiny = dataclasses.replace(rules.MODELS["resnet"], server_latency_ns=1_000)
    monkeypatch.setattr(rules, "MODELS", MappingProxyType({**rules.MODELS, "resnet": tiny}))


def test_every_mode_of_an_infeasible_server_is_recorded_and_nothing_runs(small_assets, tmp_path,
                                                                         tiny_server_bound):
    modes = ["performance", "accuracy", "TEST01"]
    harness = make_harness(small_assets, tmp_path, ["Server", "Offline"], modes)
    entries = {(e["scenario"], e["mode"]): e for e in harness.run()}
    for mode in ("performance", "accuracy", "TEST01"):
        entry = entries[("Server", mode)]
        assert entry["outcome"] == INFEASIBLE, entry
        assert entry["error"].startswith("resnet50 Server: one sample takes ")
        assert "ms (median as measured), over the 0.001 ms Server latency bound" in entry["error"]
        assert entry["result_validity"] is None and entry["duration_s"] < 30
        assert not (tmp_path / "resnet50" / "Server" / mode).exists()  # no LoadGen run, no logs
    assert entries[("Offline", "performance")]["outcome"] == "ok"
    assert entries[("Offline", "accuracy")]["accuracy"] == pytest.approx(100.0)


def test_the_cli_exits_3_with_one_line_when_infeasible_is_the_only_problem(small_assets, tmp_path, capsys,
                                                                            tiny_server_bound):
    rc = cli.main(["run", "--task", "resnet50", "--scenario", "Server", "--mode", "performance",
                   "--model", str(small_assets.model), "--dataset", str(small_assets.dataset),
                   "--out", str(tmp_path), "--profile", "smoke"])  # fmt: skip
    assert rc == cli.EXIT_INFEASIBLE == 3
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("fleet.harness: resnet50 Server: one sample takes ")
    assert last.endswith("no Server run can be VALID on this node")


def test_a_feasible_server_plan_carries_no_verdict(small_assets, tmp_path):
    harness = make_harness(small_assets, tmp_path, ["Server"], ["performance"])
    try:
        assert harness.plan("Server").infeasible is None  # small model: ~1 ms against 15 ms
    finally:
        harness.backend.close()
