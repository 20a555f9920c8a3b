"""Fixtures: one session's worth of real LoadGen logs, and run directories built from them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rawtree


@pytest.fixture(scope="session")
def logset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every scenario x mode of a real LoadGen run (seconds, once per session)."""
    return rawtree.shared_logset(lambda: tmp_path_factory.mktemp("logset"))


@pytest.fixture(scope="session")
def harness_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node harness's own output for resnet50 Offline, every mode (about 20 s)."""
    return rawtree.make_harness_out(tmp_path_factory.mktemp("harness"))


@pytest.fixture
def make_run(tmp_path: Path, logset: Path) -> Callable[..., Path]:
    """make_run(hosts=None, run_id="run-test") -> runs/<run_id> under tmp_path."""

    def build(hosts: list[rawtree.Host] | None = None, run_id: str = "run-test") -> Path:
        return rawtree.build_run(tmp_path / "runs" / run_id, logset, hosts or rawtree.three_hosts(), run_id)

    return build
