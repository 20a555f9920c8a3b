"""GPT-J's model and its generation as the v3.1 rules fix them, for the task and the benchmarks.

The model is a Hugging Face `GPTJForCausalLM` checkpoint directory, loaded with
`local_files_only` (never a hub). Generation is the reference's `gen_kwargs`: beam search
with 4 beams, early stopping, 30 to 128 new tokens, pad = eos. A batch of prompts is left
padded with an attention mask, so every prompt ends at the same position and the new tokens
start together; the response is each row's new tokens, cut after its first eos (a batch
pads finished rows with eos, which a prompt run alone never has: min_new_tokens keeps eos
out of the first 30 and a beam ends at its eos), so a sample's ids do not depend on the
batch it ran in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.errors import HarnessError, one_line
from fleet.harness.tasks.base import MemoryNeed

GENERATION: dict[str, Any] = {"num_beams": 4, "early_stopping": True, "max_new_tokens": 128,
                              "min_new_tokens": 30}
MODEL_TYPE = "gptj"


PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def parameter_count(config: dict[str, Any]) -> int:
    """GPT-J's parameters from its config.json: 6,050,882,784 for GPT-J 6B."""
    d, layers, vocab = int(config["n_embd"]), int(config["n_layer"]), int(config["vocab_size"])
    inner = int(config.get("n_inner") or 4 * d)
    block = 2 * d + 4 * d * d + (d * inner + inner) + (inner * d + d)  # ln_1, q/k/v/out, fc_in, fc_out
    return vocab * d + layers * block + 2 * d + (d * vocab + vocab)  # wte, blocks, ln_f, lm_head


def memory_need(config: dict[str, Any], precision: str) -> MemoryNeed:
    """Weights plus the key/value cache of one prompt's beam search at full length, at `precision`;
    each more prompt of a batch adds its own cache."""
    width = PRECISION_BYTES[precision]
    weights = parameter_count(config) * width
    positions = int(config.get("n_positions") or 2048)
    beams = int(GENERATION["num_beams"])
    cache = 2 * int(config["n_layer"]) * int(config["n_embd"]) * positions * beams * width
    total = weights + cache
    return MemoryNeed(total, f"GPT-J at {precision} needs {total / 1e9:.1f} GB ({weights / 1e9:.1f} GB of "
                             f"weights, {cache / 1e9:.1f} GB for a {beams}-beam, {positions}-token key/value "
                             f"cache)", per_sample=cache)


def load_gptj(path: Path) -> Any:
    """The checkpoint directory's GPT-J in fp32 (the backend casts it to the run's precision)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a node's log is lines, not a redrawn bar
    path = Path(path)
    if not path.is_dir():
        raise HarnessError(f"model {path}: GPT-J is a checkpoint directory (config.json and weights, "
                           f"as save_pretrained writes it), not a file")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"model {path}: no readable config.json ({one_line(exc, 200)})") from None
    if config.model_type != MODEL_TYPE:
        raise HarnessError(f"model {path}: config.json says model_type {config.model_type!r}, not "
                           f"{MODEL_TYPE!r} (GPT-J 6B's checkpoint-final directory)")
    try:
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as exc:
        raise HarnessError(f"model {path}: the weights do not load ({one_line(exc, 300)})") from None


def left_padded(prompts: Sequence[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) of a batch, each prompt right-aligned after `pad` ids."""
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = prompt
        mask[row, width - len(prompt):] = 1
    return ids, mask


def new_tokens(generated: np.ndarray, eos: int) -> np.ndarray:
    """One row's new ids up to and including its first eos (int64)."""
    ends = np.flatnonzero(generated == eos)
    row = generated[: ends[0] + 1] if len(ends) else generated
    return np.ascontiguousarray(row, dtype=np.int64)


class Generator:
    """Beam-search generation of a batch of prompts through a `generate` callable (torch tensors)."""

    def __init__(self, generate: Callable[..., Any], eos: int, device: Any = "cpu") -> None:
        self._generate = generate
        self.eos = int(eos)
        self.device = device

    def __call__(self, prompts: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        ids, mask = left_padded(prompts, self.eos)
        out = self._generate(input_ids=torch.from_numpy(ids).to(self.device),
                             attention_mask=torch.from_numpy(mask).to(self.device),
                             pad_token_id=self.eos, **GENERATION)
        generated = out[:, ids.shape[1]:].cpu().numpy()
        return [new_tokens(row, self.eos) for row in generated]
