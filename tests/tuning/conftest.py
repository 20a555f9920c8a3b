"""Tuning test fixtures: small synthetic ResNet50 assets once per session, caches in tmp."""

from __future__ import annotations

from pathlib import Path

import pytest
from harnessenv import AssetShelf, isolated_caches_fixture

SAMPLES = 32

_tuning_env = isolated_caches_fixture("tuning", OPENBLAS_NUM_THREADS="1")


@pytest.fixture(scope="session")
def small_assets(asset_shelf: AssetShelf) -> Path:
    """Directory with resnet50_v1.onnx (the `small` variant) and imagenet/ (32 samples)."""
    return asset_shelf.get("resnet50", SAMPLES, variant="small").root


@pytest.fixture(scope="session")
def retinanet_assets(asset_shelf: AssetShelf) -> tuple[Path, Path]:
    """Synthetic RetinaNet (its 100 ms Server bound dwarfs scheduling noise): model + dataset."""
    assets = asset_shelf.get("retinanet", 16)
    return assets.model, assets.dataset
