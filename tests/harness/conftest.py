"""Harness test fixtures: synthetic assets made once per session, and shared smoke runs.

Full ResNet50 (official topology) for accuracy, Offline and SingleStream; the `small` variant
(same names and shapes, 1/16 of the channels) for the latency-bound MultiStream and Server
runs and for the compliance tests, so the module fits in a few minutes on two busy cores.
Digest and preprocessing caches live in the session's temp dir, never in the user's home.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness_helpers import PACED_BATCH, PACED_QPS, Faults, PacedBackend, make_harness
from harnessenv import Assets, AssetShelf, isolated_caches_fixture

from fleet.harness.runner import Harness, RunContext
from fleet.harness.spec import Tuning

SAMPLES = 64


_harness_env = isolated_caches_fixture("harness", OPENBLAS_NUM_THREADS="1")


@pytest.fixture(scope="session")
def full_assets(asset_shelf: AssetShelf) -> Assets:
    return asset_shelf.get("resnet50", SAMPLES, variant="full")


@pytest.fixture(scope="session")
def small_assets(asset_shelf: AssetShelf) -> Assets:
    return asset_shelf.get("resnet50", SAMPLES, variant="small")


@pytest.fixture(scope="session")
def full_runs(full_assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Full ResNet50, smoke profile: Offline performance + accuracy, SingleStream performance."""
    out = tmp_path_factory.mktemp("full-runs")
    harness = make_harness(full_assets, out, ["SingleStream", "Offline"], ["performance", "accuracy"])
    runs = {
        ("Offline", "performance"): harness.run_one("Offline", "performance"),
        ("Offline", "accuracy"): harness.run_one("Offline", "accuracy"),
        ("SingleStream", "performance"): harness.run_one("SingleStream", "performance"),
    }
    harness.backend.close()
    return {"out": out, "runs": runs}


@pytest.fixture(scope="session")
def small_runs(small_assets: Assets, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Small variant, smoke profile: MultiStream and Server performance, Server accuracy.

    One intra-op thread: on two cores shared with other test processes, a two-thread pool
    waits at every operator for a descheduled peer, which blows the 15 ms Server bound.
    """
    out = tmp_path_factory.mktemp("small-runs")
    harness = make_harness(small_assets, out, ["MultiStream", "Server"], ["performance", "accuracy"],
                           tuning=Tuning(threads=1))
    server = harness.run_one("Server", "performance")  # an INVALID one is run again by the harness
    runs = {
        ("MultiStream", "performance"): harness.run_one("MultiStream", "performance"),
        ("Server", "performance"): server,
        ("Server", "accuracy"): harness.run_one("Server", "accuracy"),
    }
    harness.backend.close()
    return {"out": out, "runs": runs}


@pytest.fixture(scope="session")
def compliance_harness(small_assets: Assets, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[tuple[Harness, Faults]]:
    """Offline on the small variant with a paced backend; performance + accuracy already run."""
    out = tmp_path_factory.mktemp("compliance")
    faults = Faults()
    wrap: Callable[[Any, RunContext], Any] = lambda inner, ctx: PacedBackend(inner, ctx, faults)  # noqa: E731
    tuning = Tuning(batch_size=PACED_BATCH, offline_expected_qps=PACED_QPS, threads=1)
    harness = make_harness(small_assets, out, ["Offline"], ["performance", "accuracy", "TEST01", "TEST04",
                                                            "TEST05"], tuning=tuning, wrap_backend=wrap)
    for mode in ("performance", "accuracy"):
        entry = harness.run_one("Offline", mode)
        assert entry["outcome"] == "ok", entry
    yield harness, faults
    harness.backend.close()
