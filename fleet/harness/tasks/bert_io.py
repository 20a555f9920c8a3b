"""BERT-Large (SQuAD) model I/O: the ONNX feed and the payload LoadGen receives.

The fp32 `model.onnx` takes `input_ids`, `input_mask`, `segment_ids` int64 [batch, 384] and
returns `output_start_logits`, `output_end_logits` float32 [batch, 384]; the fake-quant int8
export names its inputs `input_ids`, `attention_mask`, `token_type_ids`. Each sample's payload
is `np.stack([start, end], axis=-1)`: [384, 2] float32, i.e. start/end interleaved (3072 bytes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fleet.harness.tasks.squad_features import MAX_SEQ_LENGTH, SquadFeatures

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
FAKE_QUANT_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAMES = ("output_start_logits", "output_end_logits")
PAD_LOGIT = -10000.0  # what the accuracy script pads a short payload with


def input_names_for(model_inputs: Iterable[str]) -> tuple[str, str, str]:
    """The model's names for (ids, mask, segments): the fp32 or the fake-quant convention."""
    names = set(model_inputs)
    for convention in (INPUT_NAMES, FAKE_QUANT_INPUT_NAMES):
        if set(convention) <= names:
            return convention
    raise ValueError(
        f"BERT model inputs {sorted(names)} match neither {INPUT_NAMES} nor {FAKE_QUANT_INPUT_NAMES}"
    )


def make_feed(
    features: SquadFeatures, indices: Sequence[int], input_names: tuple[str, str, str] = INPUT_NAMES
) -> dict[str, np.ndarray]:
    """The raw onnxruntime feed for a batch of feature (QSL) indices: three [B, 384] int64."""
    idx = np.asarray(indices, dtype=np.int64)
    ids, mask, segments = input_names
    return {ids: features.input_ids[idx], mask: features.input_mask[idx], segments: features.segment_ids[idx]}


def response_payloads(start_logits: np.ndarray, end_logits: np.ndarray) -> list[bytes]:
    """One payload per batch row: [384, 2] float32, start and end interleaved."""
    stacked = np.stack([np.asarray(start_logits, np.float32), np.asarray(end_logits, np.float32)], axis=-1)
    return [np.ascontiguousarray(row).tobytes() for row in stacked]


def decode_payload(
    data: bytes, dtype: type = np.float32, transposed: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Payload -> (start, end) float64 logits of length 384, padded with -10000 as the reference does."""
    flat = np.frombuffer(data, dtype=dtype)
    logits = flat.reshape(2, -1).T if transposed else flat.reshape(-1, 2)
    start = np.full(MAX_SEQ_LENGTH, PAD_LOGIT)
    end = np.full(MAX_SEQ_LENGTH, PAD_LOGIT)
    n = logits.shape[0]
    start[:n] = logits[:, 0]
    end[:n] = logits[:, 1]
    return start, end
