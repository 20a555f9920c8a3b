"""Fixtures: real LoadGen output laid out as a three-host run (factory in tests/submission)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "submission"))

import rawtree


@pytest.fixture(scope="session")
def logset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rawtree.shared_logset(lambda: tmp_path_factory.mktemp("logset"))


@pytest.fixture(scope="session")
def report_run(tmp_path_factory: pytest.TempPathFactory, logset: Path) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    return rawtree.build_run(runs / "run-report", logset, rawtree.three_hosts(), "run-report")
