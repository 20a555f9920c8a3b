"""Shared fixtures: real OpenSSH test nodes in network namespaces (tests/testnodes.py), and
synthetic assets made once per session (tests/harnessenv.py).

`testnodes` brings up three nodes once per test session (node1 `edge` with a 50 % CPU
quota, node2 and node3 `datacenter`) and tears them down at the end. It needs root,
sshd and iproute2; without them the tests that use it are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# torch._dynamo (imported by transformers' generation code) registers a polyfill for sys.intern,
# which ansible-core replaces with an object of its own when imported: once the controller tests
# have imported ansible in this process, importing GPT-J's transformers code would fail. Nodes
# and the controller never import both; this one process does, so dynamo comes first.
with contextlib.suppress(ImportError):  # no torch: the tests that need it are skipped
    import torch._dynamo  # noqa: F401

from harnessenv import AssetShelf
from testnodes import TestNodes, free_slot, why_unavailable


@pytest.fixture(scope="session")
def testnodes() -> Iterator[TestNodes]:
    why = why_unavailable()
    if why:
        pytest.skip(why)
    nodes = TestNodes(slot=free_slot()).up(3, ["edge", "dc", "dc"])
    try:
        yield nodes
    finally:
        nodes.down()


@pytest.fixture(scope="session")
def asset_shelf(tmp_path_factory: pytest.TempPathFactory) -> AssetShelf:
    """Here, not in a directory's conftest, so harness and tuning tests share what they both use."""
    return AssetShelf(tmp_path_factory)


def official_tarball() -> Path | None:
    """The MLCommons inference v3.1 tarball: $FLEET_INFERENCE_TAR, ../shared/external/, /work/shared/."""
    import os

    name = "mlcommons-inference-v3.1.tar.gz"
    repo = Path(__file__).resolve().parents[1]
    candidates = [os.environ.get("FLEET_INFERENCE_TAR", ""), repo.parent / "shared" / "external" / name,
                  Path("/work/shared/external") / name]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="session")
def official_inference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official v3.1 repository (checker, accuracy scripts, reference code), unpacked once."""
    import tarfile

    tar = official_tarball()
    if tar is None:
        pytest.skip("the MLCommons inference v3.1 tarball is not here: set FLEET_INFERENCE_TAR")
    into = tmp_path_factory.mktemp("official")
    with tarfile.open(tar) as archive:
        archive.extractall(into, filter="data")
    return into / "inference-v3.1"
