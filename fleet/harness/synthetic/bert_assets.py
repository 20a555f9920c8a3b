"""Synthetic BERT model + SQuAD-format dataset (dev-v1.1.json, vocab.txt), teacher-labelled.

bert-99 and bert-99.9 use the same assets; only the marker's task differs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from fleet import __version__
from fleet.harness import digest
from fleet.harness.synthetic.bert import BertConfig, build_bert
from fleet.harness.synthetic.squad import build_vocab, write_squad
from fleet.harness.tasks.bert import Bert

MODEL_FILE = "bert_large_fp32_384.onnx"
DATASET_DIR = "squad"
QUESTIONS_PER_ARTICLE = 10  # drafted: two paragraphs of five (the first article has three more)
VARIANTS = ("full", "small")  # one size: the synthetic BERT is already small


def make_bert_assets(task: str, out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    """`samples` is the number of questions to draft (about half survive the margin checks)."""
    import onnx

    from fleet.harness.errors import HarnessError

    if variant not in VARIANTS:
        raise HarnessError(f"unknown variant {variant!r} (choose from {', '.join(VARIANTS)})")
    articles = 4 if samples is None else max(2, math.ceil(samples / QUESTIONS_PER_ARTICLE))
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    tmp = model_path.with_name(f".{MODEL_FILE}.{os.getpid()}.tmp")
    onnx.save(build_bert(BertConfig(vocab_size=len(build_vocab()), seed=seed)), str(tmp))
    os.replace(tmp, model_path)
    dataset = out / DATASET_DIR
    try:
        report = write_squad(dataset, model_path, seed=seed, articles=articles)
    except ValueError as exc:
        raise HarnessError(f"synthetic {task} assets (seed {seed}): {exc}; try another --seed") from None
    return {
        "generator": "fleet.harness.synthetic",
        "fleet_version": __version__,
        "task": task,
        "seed": seed,
        "variant": variant,
        "samples": report.features,
        "questions": report.questions,
        "multi_span_questions": report.multi_span_questions,
        "distinct_answers": report.distinct_answers,
        "misordered_f1": round(report.shifted_f1, 3),
        "model": {"file": MODEL_FILE, "sha256": digest.file_sha256(model_path)},
        "dataset": {"dir": DATASET_DIR, "sha256": digest.tree_sha256(dataset, Bert().dataset_files(dataset))},
    }


def make_bert99_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_bert_assets("bert-99", out, samples, seed, variant)


def make_bert999_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_bert_assets("bert-99.9", out, samples, seed, variant)
