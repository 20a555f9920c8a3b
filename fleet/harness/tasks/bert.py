"""BERT-Large on SQuAD v1.1: the `bert-99` and `bert-99.9` tasks (one model, two accuracy bars).

Dataset: a directory with `dev-v1.1.json` and the uncased `vocab.txt`. Features are built
once at open (max_seq_length 384, doc_stride 128, max_query_length 64; squad_features.py)
and kept in memory: QSL index i is feature i. The fp32 model takes `input_ids`,
`input_mask`, `segment_ids` int64 [N, 384] (the fake-quant int8 export names them
`input_ids`, `attention_mask`, `token_type_ids`; the task feeds the names the model has) and
returns start/end logits [N, 384]; each sample's payload is the two stacked as [384, 2]
float32 (interleaved), as the reference sends it. Accuracy rebuilds the features and runs
the SQuAD v1.1 EM/F1 script (accuracy/squad.py). bert-99.9 is datacenter only; the rules
table says so and the planner enforces it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.tasks import bert_io, squad_features
from fleet.harness.tasks.base import AccuracyResult, Indices, Task, TensorSpec, scoring

SEQ = squad_features.MAX_SEQ_LENGTH


def input_specs(names: tuple[str, str, str]) -> tuple[TensorSpec, ...]:
    """BERT's three int64 [384] inputs under one naming convention (ids, mask, segments)."""
    return tuple(TensorSpec(name, "int64", (SEQ,)) for name in names)


def dataset_paths(dataset_dir: Path) -> tuple[Path, Path]:
    dataset_dir = Path(dataset_dir)
    return dataset_dir / squad_features.DATASET_FILE, dataset_dir / squad_features.VOCAB_FILE


class Bert(Task):
    node_extras = ("squad",)
    name = "bert-99"
    rules_model = "bert-99"
    max_batch_size = None
    inputs = input_specs(bert_io.INPUT_NAMES)
    outputs = tuple(TensorSpec(name, "float32", (SEQ,)) for name in bert_io.OUTPUT_NAMES)
    response_dtype = "float32"

    def __init__(self) -> None:
        self._features: squad_features.SquadFeatures | None = None

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        dataset, vocab = dataset_paths(dataset_dir)
        try:
            _, _, self._features = squad_features.build_features(dataset, vocab)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"dataset {dataset_dir}: {exc}") from None

    @property
    def total_sample_count(self) -> int:
        assert self._features is not None, "open() first"
        return len(self._features)

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        return list(dataset_paths(dataset_dir))

    def inputs_for(self, model_input_names: Collection[str]) -> tuple[TensorSpec, ...]:
        """The fp32 or the fake-quant int8 names, whichever the model has (ValueError: neither)."""
        self.inputs = input_specs(bert_io.input_names_for(model_input_names))
        return self.inputs

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        f = self._features
        assert f is not None, "open() first"
        ids, mask, segments = (spec.name for spec in self.inputs)
        return {ids: f.input_ids[index], mask: f.input_mask[index], segments: f.segment_ids[index]}

    def postprocess(self, outputs: dict[str, np.ndarray], n: int, *, indices: Indices) -> np.ndarray:
        start, end = (outputs[name].reshape(n, SEQ) for name in bert_io.OUTPUT_NAMES)
        return np.stack([start, end], axis=-1).astype(np.float32, copy=False)  # [n, 384, 2]

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        from fleet.harness.accuracy.squad import score_accuracy_log

        dataset, vocab = dataset_paths(dataset_dir)
        with scoring("BERT", accuracy_log):
            result = score_accuracy_log(accuracy_log, dataset, vocab)
        return AccuracyResult(result.text, result.f1)


class Bert999(Bert):
    name = "bert-99.9"
    rules_model = "bert-99.9"
