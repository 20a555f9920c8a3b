"""RNN-T accuracy: corpus word error rate, as the v3.1 `accuracy_eval.py` computes it.

References are the manifest's transcripts (QSL index i = i-th entry of at most 15 s),
normalised as the reference's Manifest does: unidecode to ASCII, lower case, numbers spelled
out (inflect, the tacotron rules: commas, pounds, dollars, decimals, ordinals, years, times),
the reference's abbreviations expanded, punctuation other than the apostrophe turned into
spaces ("&" into " and ", "+" into " plus "), whitespace collapsed and stripped, and any
character outside the 28 labels dropped. Hypotheses are each log entry's int64 label ids
mapped to characters. WER = sum of word-level Levenshtein distances / sum of reference words,
over the log's entries as they are (no de-duplication). The summary line is the script's:
`Word Error Rate: {wer*100}%, accuracy={(1-wer)*100}%` with Python's plain float formatting.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.accuracy.log import read_entries, responses
from fleet.harness.tasks import librispeech
from fleet.harness.tasks.librispeech import LABELS

_KEEP = frozenset(LABELS)
# Punctuation that becomes a space: all of string.punctuation but '+' and '&' (spelled out
# afterwards) and the apostrophe (a label).
_TO_SPACE = str.maketrans({c: " " for c in string.punctuation if c not in "+&'"})
_ABBREVIATIONS = [
    (re.compile(rf"\b{short}\.", re.IGNORECASE), long)
    for short, long in (
        ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"),
        ("jr", "junior"), ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"),
        ("lt", "lieutenant"), ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"),
        ("esq", "esquire"), ("ltd", "limited"), ("col", "colonel"), ("ft", "fort"),
    )
]


@functools.cache
def _inflect() -> Any:
    import inflect

    return inflect.engine()


def _money(amount: str, unit: str, sub_unit: str) -> str:
    parts = amount.split(".")
    if len(parts) > 2:
        return f"{amount} {unit}s"
    whole = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0

    def count(n: int, name: str) -> str:
        return f"{n} {name if n == 1 else name + 's'}"

    if whole and cents:
        return f"{count(whole, unit)}, {count(cents, sub_unit)}"
    if whole:
        return count(whole, unit)
    if cents:
        return count(cents, sub_unit)
    return f"zero {unit}s"


def _number(match: re.Match[str]) -> str:
    words = _inflect().number_to_words
    digits = match.group(0)
    if digits[0] == "0":
        return words(digits, andword="", group=1)
    n = int(digits)
    if 1000 < n < 3000:  # read as a year
        if n == 2000:
            return "two thousand"
        if 2000 < n < 2010:
            return "two thousand " + words(n % 100)
        if n % 100 == 0:
            return words(n // 100) + " hundred"
        return words(n, andword="", zero="oh", group=2).replace(", ", " ")
    if n > 1_000_000_000 and n % 10_000 != 0:  # a phone number or the like: digit by digit
        return words(n, andword="", group=1)
    return words(n, andword="")


def _time(match: re.Match[str]) -> str:
    words = _inflect().number_to_words
    if int(match.group(2)) == 0:
        return words(match.group(1))
    return f"{words(match.group(1))} {words(match.group(2))}"


def spell_numbers(text: str) -> str:
    """Numbers as words, in the reference's order of rules."""
    text = re.sub(r"([0-9][0-9,]+[0-9])", lambda m: m.group(1).replace(",", ""), text)
    text = re.sub(r"£([0-9,]*[0-9]+)", r"\1 pounds", text)
    text = re.sub(r"\$([0-9.,]*[0-9]+)", lambda m: _money(m.group(1), "dollar", "cent"), text)
    text = re.sub(r"([0-9]+\.[0-9]+)", lambda m: m.group(1).replace(".", " point "), text)
    text = re.sub(r"[0-9]+(st|nd|rd|th)", lambda m: _inflect().number_to_words(m.group(0)), text)
    text = re.sub(r"[0-9]+", _number, text)
    return re.sub(r"([0-9]{1,2}):([0-9]{2})", _time, text)


def normalize(transcript: str) -> str:
    """A manifest transcript as the reference scores it (english_cleaners, then label filter)."""
    from unidecode import unidecode

    text = spell_numbers(unidecode(transcript).lower())
    for pattern, long in _ABBREVIATIONS:
        text = pattern.sub(long, text)
    text = text.translate(_TO_SPACE).replace("&", " and ").replace("+", " plus ")
    text = re.sub(r"\s+", " ", text).strip()
    return "".join(c for c in text if c in _KEEP)


def word_errors(hypothesis: str, reference: str) -> int:
    """Word-level Levenshtein distance."""
    hyp, ref = hypothesis.split(), reference.split()
    previous = list(range(len(ref) + 1))
    for i, word in enumerate(hyp, 1):
        current = [i] + [0] * len(ref)
        for j, other in enumerate(ref, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
        previous = current
    return previous[-1]


def word_error_rate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus WER: total word edits over total reference words (inf for no reference words)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    errors = sum(word_errors(h, r) for h, r in zip(hypotheses, references, strict=True))
    words = sum(len(r.split()) for r in references)
    return errors / words if words else float("inf")


@dataclass(frozen=True)
class WerResult:
    wer: float
    accuracy: float  # (1 - WER) x 100, the checker's metric
    text: str  # what accuracy_eval.py prints (accuracy.txt without the hash line)


def summary_text(wer: float) -> str:
    return "Word Error Rate: {:}%, accuracy={:}%\n".format(wer * 100, (1 - wer) * 100)  # noqa: UP032


def decode(payload: bytes) -> str:
    """The transcript of one response: little-endian int64 label ids, as the SUT writes them."""
    ids = np.frombuffer(payload, dtype="<i8")
    if ids.size and (ids.min() < 0 or ids.max() >= len(LABELS)):
        bad = int(ids.max() if ids.max() >= len(LABELS) else ids.min())
        raise ValueError(f"a response holds label {bad}, "
                         f"outside 0..{len(LABELS) - 1}")
    return "".join(LABELS[k] for k in ids.tolist())


def score_accuracy_log(accuracy_log: Path, dataset_dir: Path) -> WerResult:
    """WER of a LoadGen accuracy log; ValueError (one line) for a log that does not fit the dataset."""
    utterances = librispeech.read_manifest(dataset_dir)
    references = [normalize(u.transcript) for u in utterances]
    hypotheses, refs = [], []
    for response in responses(read_entries(accuracy_log), len(references), "utterances"):
        hypotheses.append(decode(response.data))
        refs.append(references[response.qsl_idx])
    wer = word_error_rate(hypotheses, refs)
    return WerResult(wer=wer, accuracy=(1 - wer) * 100, text=summary_text(wer))
