"""RetinaNet/BERT tests: digest and preprocessing caches in the session's temp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    base = tmp_path_factory.mktemp("tasks-env")
    keys = ("FLEET_DIGEST_CACHE", "FLEET_CACHE_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["FLEET_DIGEST_CACHE"] = str(base / "digests.json")
    os.environ["FLEET_CACHE_DIR"] = str(base / "preprocessed")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
