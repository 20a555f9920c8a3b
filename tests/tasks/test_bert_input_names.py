"""BERT models whose inputs use the fake-quant int8 names (`attention_mask`, `token_type_ids`)
run through the real harness; a model with other input names fails with one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
from taskhelpers import make_harness

from fleet.harness.cli import main
from fleet.harness.errors import HarnessError
from fleet.harness.spec import Tuning
from fleet.harness.synthetic import MARKER
from fleet.harness.tasks import bert_io, get_task

pytestmark = pytest.mark.timeout(600)
PERFECT = '{"exact_match": 100.0, "f1": 100.0}\n'


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("bert-names")
    assert main(["synth", "--task", "bert-99", "--out", str(root)]) == 0
    return root, json.loads((root / MARKER).read_text())


def _renamed(root: Path, marker: dict[str, Any], names: tuple[str, str, str], out: Path) -> dict[str, Any]:
    """The marker of a copy of the synthetic model whose three graph inputs are called `names`."""
    model = onnx.load(str(root / marker["model"]["file"]))
    new = dict(zip(bert_io.INPUT_NAMES, names, strict=True))
    for graph_input in model.graph.input:
        graph_input.name = new.get(graph_input.name, graph_input.name)
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            node.input[k] = new.get(name, name)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return {**marker, "model": {**marker["model"], "file": str(out)}}


def test_fake_quant_input_names_score_100(assets: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, marker = assets
    int8 = _renamed(root, marker, bert_io.FAKE_QUANT_INPUT_NAMES, tmp_path / "int8-names.onnx")
    harness = make_harness(
        "bert-99", root, int8, tmp_path / "out", ["Offline"], ["accuracy"], tuning=Tuning(batch_size=2)
    )
    assert [s.name for s in harness.task.inputs] == list(bert_io.FAKE_QUANT_INPUT_NAMES)
    (entry,) = harness.run()
    assert entry["outcome"] == "ok", entry["error"]
    assert entry["accuracy"] == 100.0
    assert (tmp_path / "out" / entry["dir"] / "accuracy.txt").read_text() == PERFECT


def test_other_input_names_fail_with_one_line(assets: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, marker = assets
    odd = _renamed(root, marker, ("ids", "mask", "segments"), tmp_path / "odd-names.onnx")
    with pytest.raises(HarnessError) as caught:
        make_harness("bert-99", root, odd, tmp_path / "out", ["Offline"], ["accuracy"])
    message = str(caught.value)
    assert "\n" not in message and "does not fit the task" in message
    for name in (*bert_io.INPUT_NAMES, *bert_io.FAKE_QUANT_INPUT_NAMES):
        assert repr(name) in message


def test_bert_adopts_the_convention_it_is_given() -> None:
    task = get_task("bert-99")
    assert [s.name for s in task.inputs] == list(bert_io.INPUT_NAMES)
    specs = task.inputs_for(["token_type_ids", "input_ids", "attention_mask"])
    assert task.inputs == specs and [s.name for s in specs] == list(bert_io.FAKE_QUANT_INPUT_NAMES)
    assert [s.name for s in get_task("bert-99").inputs] == list(bert_io.INPUT_NAMES)  # per instance
    with pytest.raises(ValueError, match="match neither"):
        task.inputs_for(["input_ids", "input_mask"])
