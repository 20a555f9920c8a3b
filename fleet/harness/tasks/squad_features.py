"""SQuAD v1.1 examples -> BERT features, as `create_squad_data.py` (NVIDIA DLE) makes them.

QSL index i is feature i in generation order (examples in file order, then their doc spans),
which is what the accuracy script assumes. Each feature keeps the maps answer extraction
needs (`tokens`, `token_to_orig_map`, `token_is_max_context`); the model inputs are stacked
[N, 384] int64 arrays so a batch is one fancy-index away. Tokenisation is the uncased BERT
WordPiece of the `tokenizers` library, fed the whitespace-split words pre-tokenised so that
every word piece knows its original word (the reference tokenises word by word).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fleet.harness.jsonfile import read_listing

if TYPE_CHECKING:
    from tokenizers import BertWordPieceTokenizer

MAX_SEQ_LENGTH = 384
DOC_STRIDE = 128
MAX_QUERY_LENGTH = 64
FIRST_UNIQUE_ID = 1_000_000_000
DATASET_FILE = "dev-v1.1.json"
VOCAB_FILE = "vocab.txt"


@dataclass(frozen=True)
class SquadExample:
    qas_id: str
    question_text: str
    doc_tokens: tuple[str, ...]
    answers: tuple[str, ...]
    word_offsets: tuple[int, ...]  # character offset of each doc token in the context


@dataclass(frozen=True)
class FeatureMeta:
    """What answer extraction needs to know about one feature (one doc span of one question)."""

    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: tuple[str, ...]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]


@dataclass
class SquadFeatures:
    """All features of a dataset: stacked model inputs plus per-feature metadata."""

    input_ids: np.ndarray  # [N, 384] int64
    input_mask: np.ndarray  # [N, 384] int64
    segment_ids: np.ndarray  # [N, 384] int64
    meta: list[FeatureMeta]

    def __len__(self) -> int:
        return len(self.meta)


def _is_whitespace(c: str) -> bool:
    return c in (" ", "\t", "\r", "\n") or ord(c) == 0x202F


def split_context(text: str) -> tuple[list[str], list[int]]:
    """Whitespace-split a context the reference's way: doc tokens and their character offsets."""
    tokens: list[str] = []
    offsets: list[int] = []
    prev_is_whitespace = True
    for i, c in enumerate(text):
        if _is_whitespace(c):
            prev_is_whitespace = True
            continue
        if prev_is_whitespace:
            tokens.append(c)
            offsets.append(i)
        else:
            tokens[-1] += c
        prev_is_whitespace = False
    return tokens, offsets


def read_squad_examples(data: dict[str, Any]) -> list[SquadExample]:
    """One example per question, in file order (SQuAD v1.1 JSON already parsed)."""
    examples = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            doc_tokens, offsets = split_context(paragraph["context"])
            doc, offs = tuple(doc_tokens), tuple(offsets)
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa.get("answers", []))
                examples.append(SquadExample(qa["id"], qa["question"], doc, answers, offs))
    return examples


def read_dataset(path: Path) -> dict[str, Any]:
    return read_listing(Path(path), "SQuAD file", "data", DATASET_FILE, "SQuAD v1.1")


def load_tokenizer(vocab_path: Path) -> BertWordPieceTokenizer:
    """Uncased BERT WordPiece (lower-case, accents stripped, punctuation split), as BertTokenizer."""
    from tokenizers import BertWordPieceTokenizer

    vocab_path = Path(vocab_path)
    if not vocab_path.is_file():
        raise FileNotFoundError(f"BERT vocabulary {vocab_path} not found (expected {VOCAB_FILE})")
    return BertWordPieceTokenizer(
        str(vocab_path), lowercase=True, clean_text=True, handle_chinese_chars=True, strip_accents=None
    )


def _is_max_context(spans: list[tuple[int, int]], cur: int, position: int) -> bool:
    """True if span `cur` gives `position` the most context (min of left/right + 0.01 x length)."""
    best_score = None
    best_index = None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score = score
            best_index = index
    return cur == best_index


def _doc_spans(num_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[tuple[int, int]]:
    spans = []
    start = 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


def convert_examples_to_features(
    examples: list[SquadExample],
    tokenizer: BertWordPieceTokenizer,
    max_seq_length: int = MAX_SEQ_LENGTH,
    doc_stride: int = DOC_STRIDE,
    max_query_length: int = MAX_QUERY_LENGTH,
) -> SquadFeatures:
    """Windowed features for every example (evaluation mode: no answer positions)."""
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise ValueError("the BERT vocabulary has no [CLS] or [SEP] token")
    queries = tokenizer.encode_batch([e.question_text for e in examples], add_special_tokens=False)
    doc_cache: dict[tuple[str, ...], Any] = {}
    ids_rows: list[list[int]] = []
    meta: list[FeatureMeta] = []
    for example_index, (example, query) in enumerate(zip(examples, queries, strict=True)):
        q_tokens, q_ids = query.tokens[:max_query_length], query.ids[:max_query_length]
        doc = doc_cache.get(example.doc_tokens)
        if doc is None:
            doc = tokenizer.encode(list(example.doc_tokens), is_pretokenized=True, add_special_tokens=False)
            doc_cache[example.doc_tokens] = doc
        doc_tokens, doc_ids, tok_to_orig = doc.tokens, doc.ids, doc.word_ids
        spans = _doc_spans(len(doc_tokens), max_seq_length - len(q_tokens) - 3, doc_stride)
        for span_index, (start, length) in enumerate(spans):
            tokens = ["[CLS]", *q_tokens, "[SEP]"]
            ids = [cls_id, *q_ids, sep_id]
            to_orig: dict[int, int] = {}
            max_context: dict[int, bool] = {}
            for i in range(length):
                split = start + i
                to_orig[len(tokens)] = tok_to_orig[split]
                max_context[len(tokens)] = _is_max_context(spans, span_index, split)
                tokens.append(doc_tokens[split])
                ids.append(doc_ids[split])
            tokens.append("[SEP]")
            ids.append(sep_id)
            ids_rows.append(ids)
            meta.append(
                FeatureMeta(
                    FIRST_UNIQUE_ID + len(meta),
                    example_index,
                    span_index,
                    tuple(tokens),
                    to_orig,
                    max_context,
                )
            )
    n = len(meta)
    input_ids = np.zeros((n, max_seq_length), dtype=np.int64)
    input_mask = np.zeros((n, max_seq_length), dtype=np.int64)
    segment_ids = np.zeros((n, max_seq_length), dtype=np.int64)
    for row, (ids, m) in enumerate(zip(ids_rows, meta, strict=True)):
        input_ids[row, : len(ids)] = ids
        input_mask[row, : len(ids)] = 1
        first_doc = len(ids) - len(m.token_to_orig_map) - 1
        segment_ids[row, first_doc : len(ids)] = 1
    return SquadFeatures(input_ids, input_mask, segment_ids, meta)


def build_features(
    dataset_path: Path, vocab_path: Path
) -> tuple[dict[str, Any], list[SquadExample], SquadFeatures]:
    """dev-v1.1.json + vocab.txt -> (raw dataset, examples, features)."""
    data = read_dataset(dataset_path)
    examples = read_squad_examples(data)
    if not examples:
        raise ValueError(f"SQuAD file {dataset_path} holds no question")
    return data, examples, convert_examples_to_features(examples, load_tokenizer(vocab_path))
