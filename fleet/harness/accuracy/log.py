"""A LoadGen accuracy log read once for every accuracy script: entries, indices checked, payloads.

mlperf_log_accuracy.json is a JSON list of `{"seq_id", "qsl_idx", "data"}` (data: the
response bytes, hex). Every script needs the same three steps, and each had its own copy:
read the list, check that `qsl_idx` names an item of the dataset (an index past its end is a
harness or dataset mismatch, said in one line, never scored as a miss), and decode the hex.
De-duplication stays each script's choice, as in the reference scripts: ImageNet and
OpenImages keep the first response of a sample (`first_responses`), SQuAD the last (a dict
by feature), LibriSpeech and KiTS19 score every entry of an accuracy run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Response:
    qsl_idx: int
    data: bytes


def read_entries(path: Path) -> list[dict[str, Any]]:
    """The log's entries; ValueError for a file that is not a JSON list."""
    entries = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path} is not a LoadGen accuracy log (a JSON list)")
    return entries


def responses(entries: Iterable[dict[str, Any]], count: int, what: str) -> list[Response]:
    """Every entry as (qsl_idx, payload bytes), in log order.

    `count` is how many `what` (images, features, cases, utterances) the dataset holds; an
    index outside them is a ValueError naming both.
    """
    out = []
    for entry in entries:
        idx = int(entry["qsl_idx"])
        if not 0 <= idx < count:
            raise ValueError(f"accuracy log has qsl_idx {idx}, but the dataset has {count} {what}")
        out.append(Response(idx, bytes.fromhex(entry["data"])))
    return out


def first_responses(entries: Iterable[dict[str, Any]], count: int, what: str) -> list[Response]:
    """One response per sample, the first one logged (the reference scripts' de-duplication)."""
    seen: set[int] = set()
    out = []
    for response in responses(entries, count, what):
        if response.qsl_idx not in seen:
            seen.add(response.qsl_idx)
            out.append(response)
    return out
