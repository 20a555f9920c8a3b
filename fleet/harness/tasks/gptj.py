"""GPT-J 6B summarising CNN/DailyMail: `gptj-99` and `gptj-99.9` (PyTorch, as the v3.1 reference).

Dataset: the reference's cnn_eval.json (cnndm.py); QSL item i is item i, its prompt the Alpaca
template, encoded untimed with the checkpoint's own tokenizer and truncated to 1919 tokens, so
the QSL holds each prompt's int64 ids (prompts differ in length: a ragged sample input). One
LoadGen sample is one article; `infer` generates a batch of them with the rules' beam search
through the backend's `generate` program (gptj_generate.py), and the response is the new
token ids as int64, the reference's payload. Accuracy is evaluation.py's ROUGE and gen_len
(accuracy/cnndm.py), decoded with the same tokenizer.

With no model (the null backend, which measures orchestration only) there is no tokenizer:
prompts are their UTF-8 bytes as ids, and nothing is generated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.tasks import cnndm
from fleet.harness.tasks.base import AccuracyResult, Indices, MemoryNeed, Task, TensorSpec, scoring

INPUT_IDS = "input_ids"  # the QSL's per-article prompt ids
GENERATED = "generated"  # infer's per-article new token ids


class GPTJ(Task):
    name = "gptj-99"
    rules_model = "gptj-99"
    model_backends = ("pytorch",)
    node_extras = ("cnndm",)
    inputs = (TensorSpec(INPUT_IDS, "int64", (None,)),)
    outputs = (TensorSpec(GENERATED, "int64", (None,)),)
    response_dtype = "int64"

    def __init__(self) -> None:
        self._articles: list[cnndm.Article] = []
        self._prompts: list[np.ndarray] = []
        self._tokenizer: Any = None
        self._generator: tuple[Any, Any] | None = None  # (backend, Generator)

    def torch_model(self, path: Path) -> Any:
        from fleet.harness.tasks.gptj_generate import load_gptj

        return load_gptj(path)

    def memory_need(self, model: Path, precision: str) -> MemoryNeed | None:
        from fleet.harness.tasks.gptj_generate import PRECISION_BYTES, memory_need

        try:
            config = cnndm.checkpoint_config(model)
            return memory_need(config, precision) if precision in PRECISION_BYTES else None
        except (HarnessError, KeyError, TypeError, ValueError):
            return None  # loading the model says what is wrong with it

    @property
    def tokenizer(self) -> Any:
        """The checkpoint's tokenizer (None without a model), loaded once."""
        if self._tokenizer is None and self.model is not None:
            self._tokenizer = cnndm.load_tokenizer(self.model)
        return self._tokenizer

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        # Tokenising is seconds even for the 13,368 articles: no cache on disk to go stale.
        self._articles = cnndm.read_articles(Path(dataset_dir))
        if self.tokenizer is None:
            self._prompts = [np.frombuffer(a.prompt.encode("utf-8")[: cnndm.MAX_PROMPT_TOKENS], np.uint8)
                             .astype(np.int64) for a in self._articles]
            return
        ids = cnndm.encode_prompts(self.tokenizer, self._articles, Path(dataset_dir))
        self._prompts = [np.asarray(row, dtype=np.int64) for row in ids]

    @property
    def total_sample_count(self) -> int:
        return len(self._articles)

    @property
    def prompt_tokens(self) -> list[int]:
        """Each prompt's length in tokens, in QSL order (valid after open())."""
        return [len(p) for p in self._prompts]

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        return [cnndm.dataset_path(Path(dataset_dir))]

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        return {INPUT_IDS: self._prompts[index]}

    def generator(self, backend: Any) -> Any:
        """Beam-search generation over `backend`'s model, built once per backend."""
        if self._generator is None or self._generator[0] is not backend:
            from fleet.harness.tasks.gptj_generate import Generator

            self._generator = (backend, Generator(backend.program("generate"), self.tokenizer.eos_token_id,
                                                  device=backend.device))
        return self._generator[1]

    def infer(self, backend: Any, feed: dict[str, Any], n: int) -> dict[str, Any]:
        """The batch's prompts generated together (left padded), new ids per article."""
        return {GENERATED: self.generator(backend)(feed[INPUT_IDS])}

    def postprocess(self, outputs: dict[str, Any], n: int, *, indices: Indices) -> list[np.ndarray]:
        return list(outputs[GENERATED])

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        from fleet.harness.accuracy.cnndm import score_accuracy_log

        with scoring("GPT-J", accuracy_log):
            result = score_accuracy_log(accuracy_log, Path(dataset_dir), self.tokenizer)
        return AccuracyResult(result.text, result.rouge1)


class GPTJ_999(GPTJ):
    name = "gptj-99.9"
    rules_model = "gptj-99.9"
