"""A model may be a directory (a save_pretrained folder, a sharded checkpoint): hashed as a whole,
staged as one artifact, opened by the pytorch backend, and handed to the task."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fleet.artifacts import stage_task
from fleet.errors import ArtifactError
from fleet.harness import digest
from fleet.harness.backends import BackendOptions
from fleet.harness.spec import RunSpec

torch = pytest.importorskip("torch")


def model_dir(root: Path) -> Path:
    """A folder as save_pretrained writes one: config, two weight shards, tokenizer files."""
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"in": 3, "out": 2}))
    torch.save({"linear.weight": torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])}, root / "shard-1.pt")
    torch.save({"linear.bias": torch.tensor([0.5, -0.5])}, root / "shard-2.pt")
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "vocab.json").write_text('{"a": 0}')
    return root


class _ShardedTask:
    """Builds its network from the directory's config and loads every shard (as HF does)."""

    name = "sharded"
    model_backends = ("pytorch",)
    outputs = (type("Spec", (), {"name": "y"})(),)

    def memory_need(self, model: Path, precision: str) -> None:
        return None  # fits any node, as Task's default says

    def torch_model(self, path: Path) -> Any:
        config = json.loads((path / "config.json").read_text())
        module = torch.nn.Sequential()
        module.add_module("linear", torch.nn.Linear(config["in"], config["out"]))
        state = {}
        for shard in sorted(path.glob("shard-*.pt")):
            state.update(torch.load(shard, weights_only=True))
        module.load_state_dict(state)
        return module


def test_a_directory_digest_covers_every_file_but_hidden_ones(tmp_path: Path) -> None:
    root = model_dir(tmp_path / "m")
    files = digest.model_files(root)
    assert [p.relative_to(root).as_posix() for p in files] == [
        "config.json", "shard-1.pt", "shard-2.pt", "tokenizer/vocab.json"]
    first = digest.model_sha256(root)
    assert first == digest.tree_sha256(root, files)
    (root / ".lock").write_text("x")
    assert digest.model_sha256(root) == first
    (root / "tokenizer" / "vocab.json").write_text('{"b": 0}')
    assert digest.model_sha256(root) != first
    single = tmp_path / "m" / "config.json"
    assert digest.model_sha256(single) == digest.file_sha256(single)


def test_the_pytorch_backend_opens_a_directory_model(tmp_path: Path) -> None:
    from fleet.harness.backends.pytorch_backend import PyTorchBackend

    backend = PyTorchBackend(model_dir(tmp_path / "m"), _ShardedTask(), BackendOptions(threads=1))
    try:
        out = backend.run({"input": np.ones((2, 3), np.float32)}, 2)["y"]
    finally:
        backend.close()
    np.testing.assert_allclose(out, [[6.5, -1.0]] * 2, rtol=1e-6)


def test_an_empty_model_directory_is_refused(tmp_path: Path) -> None:
    from fleet.harness.backends.pytorch_backend import PyTorchBackend
    from fleet.harness.errors import HarnessError

    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="does not exist"):
        PyTorchBackend(tmp_path / "empty", _ShardedTask(), BackendOptions(threads=1))


def test_the_harness_hands_the_directory_to_the_task_and_records_its_digest(small_assets, tmp_path) -> None:
    root = model_dir(tmp_path / "m")
    spec = RunSpec(task="resnet50", scenarios=["Offline"], modes=["performance"], backend="null",
                   model=str(root), dataset=str(small_assets.dataset), profile="smoke")
    from fleet.harness.runner import Harness

    run = Harness(spec, tmp_path / "out", echo=lambda line: None)
    try:
        entry = run.run_one("Offline", "performance")
    finally:
        run.backend.close()
    assert run.task.model == root
    assert entry["model_sha256"] == digest.model_sha256(root) and entry["outcome"] == "ok"


def test_the_artifact_store_stages_a_model_directory_in_the_task_tar(tmp_path: Path) -> None:
    task = tmp_path / "store" / "gptj-99"
    model_dir(task / "checkpoint-final")
    (task / "cnn").mkdir()
    (task / "cnn" / "cnn_eval.json").write_text("[]")
    (task / "fleet_assets.json").write_text(json.dumps({"model": {"file": "checkpoint-final"},
                                                        "dataset": {"dir": "cnn"}}))
    staged = stage_task(tmp_path / "store", "gptj-99", tmp_path / "cache")
    assert staged.model == "checkpoint-final"
    with tarfile.open(staged.tar) as tf:
        names = set(tf.getnames())
    assert {"checkpoint-final/shard-1.pt", "checkpoint-final/tokenizer/vocab.json"} <= names
    for path in (task / "checkpoint-final").rglob("*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(ArtifactError, match=r"model .*checkpoint-final is missing"):
        stage_task(tmp_path / "store", "gptj-99", tmp_path / "cache")
