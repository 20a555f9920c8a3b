"""BERT accuracy: SQuAD v1.1 exact match and F1 over a LoadGen accuracy log.

Follows `language/bert/accuracy-squad.py` and `evaluate_v1.1.py` (v3.1): map each log entry to
feature `qsl_idx`, take the top 20 start and end logits per feature, keep spans inside the
document, starting at a max-context token and at most 30 tokens long, rank by start+end,
de-tokenise and project back onto the original words with BERT's get_final_text alignment;
then the official normalise/EM/F1, averaged over every question (unanswered ones score 0).
The result line is `json.dumps({"exact_match": EM, "f1": F1})`, which the checker's F1 regex
reads.
"""

from __future__ import annotations

import collections
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.accuracy.log import read_entries, responses
from fleet.harness.tasks.bert_io import decode_payload
from fleet.harness.tasks.squad_features import FeatureMeta, SquadExample, SquadFeatures, build_features

N_BEST_SIZE = 20
MAX_ANSWER_LENGTH = 30
EMPTY_PREDICTION = "empty"


@dataclass(frozen=True)
class Prediction:
    text: str
    score: float  # start_logit + end_logit of the best span (0.0 for "empty")
    margin: float  # score minus the next distinct candidate's (inf if there is none)
    orig_doc_start: int  # first original word of the span (-1 for "empty")
    char_offset: int  # offset of `text` inside " ".join(doc_tokens[orig_doc_start:...])


@dataclass(frozen=True)
class SquadResult:
    exact_match: float
    f1: float
    text: str  # what the reference prints last (accuracy.txt without the hash line)
    predictions: dict[str, Prediction]


class _BasicTokenizer:
    """BERT's BasicTokenizer (clean, lower-case, strip accents, split punctuation) via `tokenizers`."""

    def __init__(self, do_lower_case: bool = True) -> None:
        from tokenizers import normalizers, pre_tokenizers

        self._normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case
        )
        self._pre = pre_tokenizers.BertPreTokenizer()

    def tokenize(self, text: str) -> list[str]:
        return [piece for piece, _ in self._pre.pre_tokenize_str(self._normalizer.normalize_str(text))]


_BASIC: list[_BasicTokenizer] = []  # built on first use (tokenizers is a node-only dependency)


def _basic_tokenize(text: str) -> list[str]:
    if not _BASIC:
        _BASIC.append(_BasicTokenizer(do_lower_case=True))
    return _BASIC[0].tokenize(text)


def _strip_spaces(text: str) -> tuple[str, dict[int, int]]:
    chars = []
    ns_to_s: dict[int, int] = {}
    for i, c in enumerate(text):
        if c == " ":
            continue
        ns_to_s[len(chars)] = i
        chars.append(c)
    return "".join(chars), ns_to_s


def get_final_text(pred_text: str, orig_text: str) -> tuple[str, int]:
    """Project the normalised predicted text back onto the original words: (text, offset in orig_text).

    Falls back to the whole `orig_text` whenever the character alignment fails, as BERT does.
    """
    tok_text = " ".join(_basic_tokenize(orig_text))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        return orig_text, 0
    end_position = start_position + len(pred_text) - 1
    orig_ns_text, orig_ns_to_s = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text, 0
    tok_s_to_ns = {s: ns for ns, s in tok_ns_to_s.items()}
    orig_start = orig_ns_to_s.get(tok_s_to_ns[start_position]) if start_position in tok_s_to_ns else None
    if orig_start is None:
        return orig_text, 0
    orig_end = orig_ns_to_s.get(tok_s_to_ns[end_position]) if end_position in tok_s_to_ns else None
    if orig_end is None:
        return orig_text, 0
    return orig_text[orig_start : orig_end + 1], orig_start


def _best_indexes(logits: np.ndarray, n_best_size: int) -> list[int]:
    """Indices of the n largest logits, ties in index order (Python's stable sort, as the reference)."""
    return [int(i) for i in np.argsort(-logits, kind="stable")[:n_best_size]]


def predict_example(
    example: SquadExample,
    features: list[FeatureMeta],
    results: dict[int, tuple[np.ndarray, np.ndarray]],
    n_best_size: int = N_BEST_SIZE,
    max_answer_length: int = MAX_ANSWER_LENGTH,
) -> Prediction:
    """The best answer of one question over its features' logits (keyed by unique_id)."""
    prelim = []
    for feature_index, feature in enumerate(features):
        result = results.get(feature.unique_id)
        if result is None:  # compliance runs log a subset of the samples
            continue
        start_logits, end_logits = result
        for start in _best_indexes(start_logits, n_best_size):
            for end in _best_indexes(end_logits, n_best_size):
                if start >= len(feature.tokens) or end >= len(feature.tokens):
                    continue
                if start not in feature.token_to_orig_map or end not in feature.token_to_orig_map:
                    continue
                if not feature.token_is_max_context.get(start, False):
                    continue
                if end < start or end - start + 1 > max_answer_length:
                    continue
                prelim.append(
                    (float(start_logits[start]) + float(end_logits[end]), feature_index, start, end)
                )
    prelim.sort(key=lambda p: p[0], reverse=True)

    nbest: list[tuple[str, float, int, int]] = []
    seen: set[str] = set()
    for score, feature_index, start, end in prelim:
        if len(nbest) >= n_best_size:
            break
        feature = features[feature_index]
        tok_text = " ".join(feature.tokens[start : end + 1]).replace(" ##", "").replace("##", "")
        tok_text = " ".join(tok_text.strip().split())
        orig_start, orig_end = feature.token_to_orig_map[start], feature.token_to_orig_map[end]
        orig_text = " ".join(example.doc_tokens[orig_start : orig_end + 1])
        final_text, offset = get_final_text(tok_text, orig_text)
        if final_text in seen:
            continue
        seen.add(final_text)
        nbest.append((final_text, score, orig_start, offset))
    if not nbest:
        return Prediction(EMPTY_PREDICTION, 0.0, float("inf"), -1, 0)
    text, score, orig_start, offset = nbest[0]
    margin = score - nbest[1][1] if len(nbest) > 1 else float("inf")
    return Prediction(text, score, margin, orig_start, offset)


def results_from_log(
    entries: list[dict[str, Any]], features: SquadFeatures
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """unique_id -> (start, end) logits of each logged sample (a later duplicate wins, as the reference)."""
    return {features.meta[r.qsl_idx].unique_id: decode_payload(r.data)
            for r in responses(entries, len(features), "features")}


def predict(
    examples: list[SquadExample], features: SquadFeatures, results: dict[int, tuple[np.ndarray, np.ndarray]]
) -> dict[str, Prediction]:
    """qas_id -> best answer, for every example (those without any logged feature get "empty")."""
    by_example: dict[int, list[FeatureMeta]] = collections.defaultdict(list)
    for meta in features.meta:
        by_example[meta.example_index].append(meta)
    return {ex.qas_id: predict_example(ex, by_example[i], results) for i, ex in enumerate(examples)}


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (evaluate-v1.1)."""
    exclude = set(string.punctuation)
    s = "".join(ch for ch in s.lower() if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def evaluate(data: dict[str, Any], predictions: dict[str, str]) -> dict[str, float]:
    """Official SQuAD v1.1 evaluation: {'exact_match': %, 'f1': %} over every question."""
    f1 = exact_match = 0.0
    total = 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                truths = [a["text"] for a in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += max(float(exact_match_score(prediction, t)) for t in truths)
                f1 += max(f1_score(prediction, t) for t in truths)
    if total == 0:
        raise ValueError("the SQuAD dataset holds no question")
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def score_entries(
    entries: list[dict[str, Any]], data: dict[str, Any], examples: list[SquadExample], features: SquadFeatures
) -> SquadResult:
    predictions = predict(examples, features, results_from_log(entries, features))
    scores = evaluate(data, {qid: p.text for qid, p in predictions.items()})
    line = json.dumps({"exact_match": scores["exact_match"], "f1": scores["f1"]})
    return SquadResult(scores["exact_match"], scores["f1"], line + "\n", predictions)


def score_accuracy_log(log_path: Path, dataset_path: Path, vocab_path: Path) -> SquadResult:
    """Score `mlperf_log_accuracy.json` against dev-v1.1.json, rebuilding the features from vocab.txt."""
    data, examples, features = build_features(dataset_path, vocab_path)
    entries = read_entries(log_path)
    return score_entries(entries, data, examples, features)
