"""Synthetic BERT model + SQuAD-format dataset (dev-v1.1.json, vocab.txt), teacher-labelled.

bert-99 and bert-99.9 use the same assets; only the marker's task differs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fleet.harness.synthetic import asset_marker, check_variant, seed_must_label, write_atomic
from fleet.harness.synthetic.bert import BertConfig, build_bert
from fleet.harness.synthetic.squad import build_vocab, write_squad
from fleet.harness.tasks.bert import Bert

MODEL_FILE = "bert_large_fp32_384.onnx"
DATASET_DIR = "squad"
DEFAULT_ARTICLES = 4  # drafted when no size is asked for: ~18 questions, ~28 features
# Features a drafted article yields after the margin and unique-answer checks (~4 at 200
# articles, fewer as used answers pile up): the first draft's size for a requested count.
FEATURES_PER_ARTICLE = 3.5
MAX_DRAFTS = 4
VARIANTS = ("full", "small")  # one size: the synthetic BERT is already small


def make_bert_assets(task: str, out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    """`samples`: at least this many features (QSL samples); drafts again, larger, until met."""
    from fleet.harness.errors import HarnessError

    check_variant(variant, VARIANTS)
    articles = DEFAULT_ARTICLES if samples is None else max(2, math.ceil(samples / FEATURES_PER_ARTICLE))
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    model = build_bert(BertConfig(vocab_size=len(build_vocab()), seed=seed))
    write_atomic(model_path, model.SerializeToString())
    dataset = out / DATASET_DIR
    for _ in range(MAX_DRAFTS):
        with seed_must_label(task, seed):
            report = write_squad(dataset, model_path, seed=seed, articles=articles)
        if samples is None or report.features >= samples:
            break
        articles = math.ceil(articles * samples / max(report.features, 1) * 1.1)
    else:
        raise HarnessError(f"synthetic {task}: {report.features} features after {MAX_DRAFTS} drafts, "
                           f"{samples} asked for; ask for fewer --samples")
    return asset_marker(
        task, seed, variant, model_path, dataset, Bert().dataset_files(dataset),
        samples=report.features,
        questions=report.questions,
        multi_span_questions=report.multi_span_questions,
        distinct_answers=report.distinct_answers,
        misordered_f1=round(report.shifted_f1, 3),
    )


def make_bert99_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_bert_assets("bert-99", out, samples, seed, variant)


def make_bert999_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    return make_bert_assets("bert-99.9", out, samples, seed, variant)
