"""Tuning test fixtures: small synthetic ResNet50 assets once per session, caches in tmp."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.harness.synthetic import synthesize

SAMPLES = 32


@pytest.fixture(scope="session", autouse=True)
def _tuning_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    base = tmp_path_factory.mktemp("tuning-env")
    saved = {k: os.environ.get(k) for k in ("FLEET_DIGEST_CACHE", "FLEET_CACHE_DIR", "OPENBLAS_NUM_THREADS")}
    os.environ["FLEET_DIGEST_CACHE"] = str(base / "digests.json")
    os.environ["FLEET_CACHE_DIR"] = str(base / "preprocessed")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def small_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with resnet50_v1.onnx (the `small` variant) and imagenet/ (32 samples)."""
    root = tmp_path_factory.mktemp("tuning-assets")
    synthesize("resnet50", root, SAMPLES, seed=0, variant="small")
    return root


@pytest.fixture(scope="session")
def retinanet_assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Synthetic RetinaNet (its 100 ms Server bound dwarfs scheduling noise): model + dataset."""
    root = tmp_path_factory.mktemp("tuning-retinanet")
    marker = synthesize("retinanet", root, 16, seed=0)
    return root / marker["model"]["file"], root / marker["dataset"]["dir"]
