"""One reader of LoadGen accuracy logs for every accuracy script, and null outputs for ragged tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fleet.harness.accuracy.log import Response, first_responses, read_entries, responses
from fleet.harness.tasks import get_task


def _entries(*pairs: tuple[int, bytes]) -> list[dict]:
    return [{"seq_id": i, "qsl_idx": idx, "data": data.hex().upper()} for i, (idx, data) in enumerate(pairs)]


def test_every_response_in_log_order_and_the_first_per_sample() -> None:
    entries = _entries((2, b"\x01"), (0, b"\x02\x03"), (2, b"\x04"))
    first, second, third = Response(2, b"\x01"), Response(0, b"\x02\x03"), Response(2, b"\x04")
    assert responses(entries, 3, "images") == [first, second, third]
    assert first_responses(entries, 3, "images") == [first, second]


@pytest.mark.parametrize("idx", [-1, 3])
def test_an_index_outside_the_dataset_is_one_line(idx: int) -> None:
    with pytest.raises(ValueError, match=f"accuracy log has qsl_idx {idx}, but the dataset has 3 cases"):
        responses(_entries((idx, b"")), 3, "cases")


def test_a_log_that_is_not_a_list_is_refused(tmp_path) -> None:
    (tmp_path / "log.json").write_text(json.dumps({"qsl_idx": 0}))
    with pytest.raises(ValueError, match="is not a LoadGen accuracy log"):
        read_entries(tmp_path / "log.json")


@pytest.mark.parametrize("task, name, dtype", [("rnnt", "transcript", np.int64),
                                               ("3d-unet-99", "segmentation", np.uint8)])
def test_ragged_tasks_get_empty_null_outputs_from_their_infer_outputs(task: str, name: str, dtype) -> None:
    outputs = get_task(task).null_outputs(3)
    assert list(outputs) == [name] and len(outputs[name]) == 3
    assert all(a.size == 0 and a.dtype == dtype for a in outputs[name])


def test_fixed_size_tasks_keep_zeros_of_their_outputs() -> None:
    outputs = get_task("resnet50").null_outputs(4)
    assert {k: v.shape for k, v in outputs.items()} == {"ArgMax:0": (4,)}
