"""What the tests that run the harness share: synthetic assets and isolated node caches.

Imported by tests/conftest.py (the session-wide asset fixture) and by the harness, tuning and
tasks conftests, as tests/loadcheck.py is (tests/ is on sys.path).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.harness.synthetic import synthesize


@dataclass(frozen=True)
class Assets:
    """One synthesized asset directory and its marker (which names the model and dataset)."""

    root: Path
    marker: dict[str, Any]

    @property
    def model(self) -> Path:
        return self.root / self.marker["model"]["file"]

    @property
    def dataset(self) -> Path:
        return self.root / self.marker["dataset"]["dir"]


class AssetShelf:
    """Synthetic assets (seed 0) by task, sample count and variant, each made once.

    Synthesis takes seconds to minutes on two busy cores; one shelf per session lets every
    test directory that asks for the same set share it.
    """

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._made: dict[tuple[str, int, str], Assets] = {}

    def get(self, task: str, samples: int, variant: str = "full") -> Assets:
        key = (task, samples, variant)
        if key not in self._made:
            root = self._tmp.mktemp(f"assets-{task}-{variant}-{samples}")
            self._made[key] = Assets(root, synthesize(task, root, samples, seed=0, variant=variant))
        return self._made[key]


@contextmanager
def isolated_caches(base: Path, **env: str) -> Iterator[None]:
    """Digest and preprocessing caches under `base` (never the user's), plus `env`, until exit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLEET_DIGEST_CACHE", str(base / "digests.json"))
        patch.setenv("FLEET_CACHE_DIR", str(base / "preprocessed"))
        for key, value in env.items():
            patch.setenv(key, value)
        yield


def isolated_caches_fixture(tag: str, **env: str) -> Any:
    """A conftest's autouse session fixture: its directory's tests run in isolated_caches(`tag`-env)."""

    def caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
        with isolated_caches(tmp_path_factory.mktemp(f"{tag}-env"), **env):
            yield

    return pytest.fixture(scope="session", autouse=True, name=f"_{tag}_env")(caches)


class WrappedBackend:
    """Stands in for the backend it wraps (name, threads, provider, versions, close).

    The base of the test backends that pace, fake or corrupt inference: they change `run` only,
    so the manifest still records the real backend.
    """

    needs_feed = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.threads, self.execution_provider = inner.name, inner.threads, inner.execution_provider

    def pinned(self, call: Any) -> Any:
        return self.inner.pinned(call)

    def versions(self) -> dict[str, str]:
        return self.inner.versions()

    def close(self) -> None:
        self.inner.close()
