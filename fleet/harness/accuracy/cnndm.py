"""GPT-J accuracy: ROUGE and gen_len as the v3.1 `language/gpt-j/evaluation.py` computes them, offline.

The script keeps each sample's first response (in log order), decodes the int64 ids with the
checkpoint's tokenizer (skipping special tokens), strips predictions and references and puts
each sentence on its own line, then takes Hugging Face `evaluate`'s "rouge" per sample
(rouge_score's RougeScorer over rouge1, rouge2, rougeL and rougeLsum, Porter stemmer,
F-measure) and prints each metric as round(mean x 100, 4), `gen_len` as the summed characters
of the processed predictions and `gen_num` as their count, as one Python dict after a
`Results` line. The checker's regexes want `'key': number`: values are printed as plain
Python numbers (NumPy 2 would print `np.float64(...)`, which they do not match).

Two parts of the script reach the network, so fleet replaces them with what they compute:
`evaluate.load("rouge")` by rouge_score itself, and `nltk.sent_tokenize` (whose English Punkt
model `nltk.download` fetches) by NLTK's Punkt algorithm with no trained parameters. The split
only places newlines: rouge1, rouge2 and rougeL tokenise on non-alphanumerics and never see
them, and gen_len counts one newline where the text had one space, so the checked metrics
equal the script's whenever sentences are separated by single spaces (more whitespace between
two sentences is counted once by the split). rougeLsum, which the checker does not read,
depends on where the sentences end (the trained model knows abbreviations such as "U.S.").

On a synthetic set (its marker beside the dataset) the references are the teacher model's own
outputs, and the real gen_len target means nothing: a last line gives gen_len's ratio to the
references' length instead.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.accuracy.log import first_responses, read_entries
from fleet.harness.tasks import cnndm

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass(frozen=True)
class RougeAccuracy:
    metrics: dict[str, float | int]  # the printed dict: rouge*, gen_len, gen_num
    text: str

    @property
    def rouge1(self) -> float:
        return float(self.metrics["rouge1"])


@functools.cache
def _punkt() -> Any:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` by Punkt with default parameters (no download, no trained model)."""
    return _punkt().tokenize(text)


def postprocess(texts: Sequence[str]) -> list[str]:
    """evaluation.py's postprocess_text for one side: strip, one sentence per line."""
    return ["\n".join(split_sentences(text.strip())) for text in texts]


@functools.cache
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Per-sample F-measures, as `evaluate`'s rouge with use_aggregator=False returns them."""
    scorer = _scorer()
    scores = [scorer.score(ref, pred) for ref, pred in zip(references, predictions, strict=True)]
    return {key: [s[key].fmeasure for s in scores] for key in ROUGE_TYPES}


def metrics_of(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float | int]:
    """The script's result dict from decoded texts, with plain Python numbers."""
    return metrics_of_processed(postprocess(predictions), postprocess(references))


def metrics_of_processed(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float | int]:
    """metrics_of for texts already through `postprocess`."""
    scores = rouge(preds, refs)
    result: dict[str, float | int] = {k: float(round(np.mean(v) * 100, 4)) for k, v in scores.items()}
    result["gen_len"] = int(np.sum([len(p) for p in preds]))
    result["gen_num"] = len(preds)
    return result


def decode(tokenizer: Any, ids: Sequence[np.ndarray]) -> list[str]:
    """The texts of the responses' ids (with no tokenizer, the null backend's bytes)."""
    if tokenizer is None:
        return [bytes(np.clip(row, 0, 255).astype(np.uint8)).decode("utf-8", "replace") for row in ids]
    return tokenizer.batch_decode([row.tolist() for row in ids], skip_special_tokens=True)


def synthetic_reference(dataset_dir: Path) -> bool:
    """Whether this dataset is a synthetic set whose references are a teacher's outputs."""
    from fleet.harness import digest
    from fleet.harness.synthetic import find_marker

    path = cnndm.dataset_path(dataset_dir)
    markers = [m for m in find_marker(Path(dataset_dir)) if m.get("reference") == "teacher"]
    if not markers:
        return False
    sha = digest.tree_sha256(Path(dataset_dir), [path])
    return any((m.get("dataset") or {}).get("sha256") == sha for m in markers)


def render(metrics: dict[str, float | int]) -> str:
    return f"\nResults\n\n{metrics!r}\n"


def score_accuracy_log(accuracy_log: Path, dataset_dir: Path, tokenizer: Any) -> RougeAccuracy:
    """ROUGE of a log against cnn_eval.json's summaries; ValueError when the log is unusable."""
    articles = cnndm.read_articles(dataset_dir)
    kept = first_responses(read_entries(accuracy_log), len(articles), "articles")
    ids = []
    for r in kept:
        if len(r.data) % 8:
            raise ValueError(f"qsl_idx {r.qsl_idx}: {len(r.data)} bytes is not int64 token ids")
        ids.append(np.frombuffer(r.data, dtype=np.int64))
    references = postprocess([articles[r.qsl_idx].output for r in kept])
    metrics = metrics_of_processed(postprocess(decode(tokenizer, ids)), references)
    text = render(metrics)
    if synthetic_reference(dataset_dir):
        length = sum(len(r) for r in references)
        ratio = metrics["gen_len"] / length if length else 0.0
        text += (f"synthetic set: gen_len is {ratio:.4f} x the references' {length} characters (the "
                 f"teacher model's own outputs); the v3.1 gen_len target belongs to the 13,368 real "
                 f"CNN/DailyMail articles\n")
    return RougeAccuracy(metrics, text)
