"""A teacher-labelled SQuAD v1.1 dataset (dev-v1.1.json + vocab.txt) for the synthetic BERT.

The text is generated from a fixed word pool (capitalised names, numbers, punctuation glued to
words, accented words, words that exist only as word pieces, one out-of-vocabulary word) so
tokenisation, `##` de-tokenisation and get_final_text's alignment are all exercised; one
context is long enough to need several 384-token doc spans. vocab.txt is the pool's uncased
word pieces, so its size is known before any text is drawn (`build_vocab`), and the model can
be built first.

Answers are the given fp32 model's own predictions, made through the harness's feature
builder, payload encoder and the accuracy script's answer extraction, so a correct harness
scores EM = F1 = 100. Questions whose best answer beats the runner-up by less than
MIN_MARGIN (where float noise between batch sizes or devices could flip it) are dropped, and
the generator refuses a dataset whose answers are too uniform for a misordered harness to
lose F1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from fleet.harness.accuracy.squad import evaluate, normalize_answer, predict, results_from_log
from fleet.harness.tasks.bert_io import OUTPUT_NAMES, input_names_for, make_feed, response_payloads
from fleet.harness.tasks.squad_features import (
    DATASET_FILE,
    VOCAB_FILE,
    convert_examples_to_features,
    load_tokenizer,
    read_squad_examples,
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MIN_MARGIN = 0.25  # logit units between the best answer and the next distinct one
MIN_QUESTIONS = 12
MAX_SHIFTED_F1 = 50.0  # answers read from the neighbouring sample must lose at least half the F1
BATCH = 8

_NAMES = (
    "Alice",
    "Bruno",
    "Chandra",
    "Dmitri",
    "Elena",
    "Farah",
    "Gustav",
    "Hiroshi",
    "Ingrid",
    "Jomo",
    "Katya",
    "Lucien",
    "Marisol",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
)
_PLACES = ("Lisbon", "Nairobi", "Oslo", "Quito", "Kyoto", "Tallinn", "Dakar", "Perth", "Cusco", "Zagreb")
_NOUNS = (
    "river",
    "bridge",
    "council",
    "harbour",
    "library",
    "engine",
    "garden",
    "festival",
    "museum",
    "railway",
    "treaty",
    "mountain",
    "village",
    "market",
    "school",
    "tower",
    "island",
    "forest",
    "factory",
    "castle",
    "orchestra",
    "painter",
    "scholar",
    "merchant",
    "captain",
    "farmer",
    "dynasty",
    "cathedral",
    "telescope",
    "manuscript",
)
_VERBS = (
    "built",
    "founded",
    "crossed",
    "visited",
    "restored",
    "described",
    "mapped",
    "defended",
    "opened",
    "closed",
    "studied",
    "sold",
    "named",
    "moved",
    "painted",
    "wrote",
    "measured",
)
_ADJECTIVES = (
    "old",
    "northern",
    "famous",
    "small",
    "wooden",
    "royal",
    "silent",
    "golden",
    "ancient",
    "busy",
    "narrow",
    "distant",
    "sacred",
    "modern",
    "green",
)
_PREPOSITIONS = ("near", "behind", "across", "beyond", "above", "within", "beside")
# Words that are only in the vocabulary as pieces: root + "##suffix".
_ROOTS = ("paint", "build", "sail", "print", "harvest", "trade", "carv", "weav")
_SUFFIXES = ("ing", "ers", "ed", "able")
_PLURAL = "##s"
_ACCENTED = ("café", "naïve", "façade", "résumé", "São")
_OOV = "qzxjwv"  # decomposes into nothing in the vocabulary: [UNK]
_FUNCTION = (
    "the",
    "a",
    "an",
    "of",
    "in",
    "and",
    "to",
    "was",
    "by",
    "for",
    "it",
    "which",
    "that",
    "after",
    "before",
    "during",
    "who",
    "what",
    "when",
    "where",
    "did",
    "how",
    "many",
    "whom",
    "is",
    "its",
    "their",
    "with",
    "from",
    "on",
    "years",
    "later",
    "first",
    "second",
    "also",
)
_PUNCT = (".", ",", "(", ")", "'", '"', ";", ":", "?", "-", "s")


def build_vocab() -> list[str]:
    """The fixture's vocab.txt lines: special tokens, punctuation, whole words, then pieces."""
    words = {
        w.lower() for w in (*_NAMES, *_PLACES, *_NOUNS, *_VERBS, *_ADJECTIVES, *_PREPOSITIONS, *_FUNCTION)
    }
    words |= {"cafe", "naive", "facade", "resume", "sao"}  # accents are stripped before WordPiece
    words |= {str(n) for n in range(10)} | {str(y) for y in range(1700, 2000, 7)}
    words |= set(_ROOTS)
    pieces = {f"##{s}" for s in _SUFFIXES} | {_PLURAL}
    return [*SPECIAL_TOKENS, *sorted(set(_PUNCT)), *sorted(words - set(_PUNCT)), *sorted(pieces)]


class _TextGenerator:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def pick(self, pool: tuple[str, ...]) -> str:
        return pool[int(self.rng.integers(len(pool)))]

    def year(self) -> str:
        return str(1700 + 7 * int(self.rng.integers(0, 43)))

    def compound(self) -> str:
        return self.pick(_ROOTS) + self.pick(_SUFFIXES)

    def sentence(self) -> str:
        r = self.rng.integers(0, 6)
        name, place, noun, noun2 = self.pick(_NAMES), self.pick(_PLACES), self.pick(_NOUNS), self.pick(_NOUNS)
        adj, verb, prep = self.pick(_ADJECTIVES), self.pick(_VERBS), self.pick(_PREPOSITIONS)
        if r == 0:
            return f"In {self.year()}, {name} {verb} the {adj} {noun} {prep} {place}."
        if r == 1:
            return f"The {noun} of {place} was {verb} by {name}'s {noun2} ({self.year()}-{self.year()})."
        if r == 2:
            return (
                f"{name} and {self.pick(_NAMES)} {verb} an {adj} {noun}; "
                f"it was {self.compound()} {prep} the {noun2}."
            )
        if r == 3:
            return f"A {self.pick(_ACCENTED)} {prep} the {noun} of {place} was {verb} in {self.year()}."
        if r == 4:
            return (
                f'"{self.compound().capitalize()}" {noun}s {verb} '
                f"{int(self.rng.integers(2, 9))} {adj} {noun2}s."
            )
        return f"During the {adj} years, the {noun} {verb} {prep} {place}: {name} was its {self.compound()}."

    def paragraph(self, sentences: int) -> str:
        return " ".join(self.sentence() for _ in range(sentences))

    def question(self, context: str) -> str:
        words = [w.strip(".,;:()\"'") for w in context.split()]
        words = [w for w in words if w and w.lower() not in ("the", "a", "an")]
        picks = [words[int(self.rng.integers(len(words)))] for _ in range(int(self.rng.integers(3, 8)))]
        return f"{self.pick(('What', 'Who', 'When', 'Where', 'How many'))} {' '.join(picks)}?"


@dataclass(frozen=True)
class SquadSynthReport:
    root: Path
    questions: int  # kept in dev-v1.1.json
    dropped: int  # drafted but dropped: no clear answer (margin, "empty") or an answer already used
    features: int
    multi_span_questions: int
    distinct_answers: int
    shifted_f1: float  # F1 when every feature's logits are read as its neighbour's


def _draft(rng: np.random.Generator, articles: int, questions_per_paragraph: int) -> dict[str, Any]:
    """Unlabelled SQuAD JSON: `articles` articles of two paragraphs; the first paragraph is long."""
    gen = _TextGenerator(rng)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(2):
            long = a == 0 and p == 0
            context = gen.paragraph(40 if long else int(rng.integers(5, 9)))
            if long:
                context += f" The last {gen.pick(_NOUNS)} was {_OOV}."
            count = questions_per_paragraph + (3 if long else 0)
            qas = [
                {"id": rng.bytes(12).hex(), "question": gen.question(context), "answers": []}
                for _ in range(count)
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"Synthetic_article_{a}", "paragraphs": paragraphs})
    return {"version": "1.1", "data": data}


def _run_model(session: ort.InferenceSession, features: Any) -> list[dict[str, Any]]:
    """Accuracy-log shaped entries for every feature, in QSL order."""
    names = input_names_for(i.name for i in session.get_inputs())
    entries = []
    for first in range(0, len(features), BATCH):
        idx = list(range(first, min(first + BATCH, len(features))))
        start, end = session.run(list(OUTPUT_NAMES), make_feed(features, idx, names))
        for i, payload in zip(idx, response_payloads(start, end), strict=True):
            entries.append({"seq_id": i, "qsl_idx": i, "data": payload.hex()})
    return entries


def write_squad(
    root: Path, model_path: Path, *, seed: int = 0, articles: int = 4, questions_per_paragraph: int = 5
) -> SquadSynthReport:
    """Write ROOT/dev-v1.1.json and ROOT/vocab.txt labelled by the model at `model_path`."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    vocab_path = root / VOCAB_FILE
    vocab_path.write_text("\n".join(build_vocab()) + "\n", encoding="utf-8")
    tokenizer = load_tokenizer(vocab_path)
    rng = np.random.default_rng(seed)
    data = _draft(rng, articles, questions_per_paragraph)
    examples = read_squad_examples(data)
    features = convert_examples_to_features(examples, tokenizer)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    entries = _run_model(session, features)
    predictions = predict(examples, features, results_from_log(entries, features))

    spans_per_example: dict[int, int] = {}
    for meta in features.meta:
        spans_per_example[meta.example_index] = spans_per_example.get(meta.example_index, 0) + 1
    kept: dict[str, str] = {}
    answered: set[str] = set()
    multi_span = 0
    for index, example in enumerate(examples):
        pred = predictions[example.qas_id]
        normalized = normalize_answer(pred.text)
        if pred.orig_doc_start < 0 or pred.margin < MIN_MARGIN or not normalized or normalized in answered:
            # No clear answer; or one that scores F1 0 even when matched (only punctuation or
            # articles); or one more question with an answer already used.
            continue
        answered.add(normalized)
        kept[example.qas_id] = pred.text
        multi_span += spans_per_example.get(index, 0) > 1
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            labelled = []
            for qa in paragraph["qas"]:
                if qa["id"] not in kept:
                    continue
                example = next(e for e in examples if e.qas_id == qa["id"])
                pred = predictions[qa["id"]]
                answer_start = example.word_offsets[pred.orig_doc_start] + pred.char_offset
                if context[answer_start : answer_start + len(pred.text)] != pred.text:
                    raise ValueError(f"synthetic SQuAD: answer {pred.text!r} does not sit at {answer_start}")
                labelled.append({**qa, "answers": [{"text": pred.text, "answer_start": answer_start}]})
            paragraph["qas"] = labelled

    shifted = [{**e, "qsl_idx": (e["qsl_idx"] + 1) % len(entries)} for e in entries]
    shifted_predictions = predict(examples, features, results_from_log(shifted, features))
    shifted_f1 = evaluate(data, {qid: p.text for qid, p in shifted_predictions.items()})["f1"]
    check_diversity(kept, multi_span, shifted_f1)
    (root / DATASET_FILE).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    final_features = convert_examples_to_features(read_squad_examples(data), tokenizer)
    return SquadSynthReport(
        root=root,
        questions=len(kept),
        dropped=len(examples) - len(kept),
        features=len(final_features),
        multi_span_questions=multi_span,
        distinct_answers=len(set(kept.values())),
        shifted_f1=shifted_f1,
    )


def check_diversity(answers: dict[str, str], multi_span: int, shifted_f1: float) -> None:
    """Refuse answers that cannot tell a misordered harness from a correct one."""
    if len(answers) < MIN_QUESTIONS:
        raise ValueError(
            f"degenerate synthetic SQuAD: only {len(answers)} questions have a clear answer "
            f"(need {MIN_QUESTIONS})"
        )
    if len({normalize_answer(a) for a in answers.values()}) < len(answers):
        raise ValueError("synthetic SQuAD: two questions share an answer")
    if multi_span == 0:
        raise ValueError("synthetic SQuAD: no labelled question spans two or more doc spans")
    if shifted_f1 > MAX_SHIFTED_F1:
        raise ValueError(f"degenerate synthetic SQuAD: misordered logits still score F1 {shifted_f1:.1f}")
