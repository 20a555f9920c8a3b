"""Synthetic LibriSpeech dev-clean: 16 kHz 16-bit mono wav files and the reference's manifest.

Each utterance is 1-3 s of voiced-sounding segments (a random pitch with harmonics under an
envelope, with short pauses and a little noise), so the features change over time and the
decoder's output follows them. Transcripts are the teacher's: what the synthetic model decodes
from the written file (read back, so 16-bit quantisation is included). One extra manifest
entry is longer than 15 s on paper and must be filtered out, as 190 of the real 2703 are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.synthetic import write_atomic
from fleet.harness.tasks import librispeech

RATE = librispeech.SAMPLE_RATE
SPEAKER, CHAPTER = 1272, 128104  # the reference layout's <spk>/<chap> directories
MAX_SHUFFLED_ACCURACY = 50.0  # a shuffled order must lose at least half the words
MIN_CHARACTERS = 8  # distinct characters over all transcripts
MAX_REDRAWS = 8  # waveforms drawn for one utterance before the model is called deaf


def synthetic_waveform(rng: np.random.Generator) -> np.ndarray:
    """1-3 s of float32 audio in [-1, 1]: voiced segments and pauses."""
    total = int(rng.uniform(1.0, 3.0) * RATE)
    out = np.zeros(total, np.float64)
    t = 0
    while t < total:
        length = int(rng.uniform(0.06, 0.3) * RATE)
        if rng.random() < 0.8:
            n = min(length, total - t)
            time = np.arange(n) / RATE
            pitch = rng.uniform(90, 400)
            voice = sum(rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * pitch * k * time + rng.uniform(0, 6.3))
                        for k in range(1, 8))
            out[t : t + n] = voice * np.hanning(n) * rng.uniform(0.2, 0.9)
        t += length
    out += rng.normal(0, 0.003, total)
    return (0.5 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def wav_name(i: int) -> str:
    return f"dev-clean-wav/{SPEAKER}/{CHAPTER}/{SPEAKER}-{CHAPTER}-{i:04d}.wav"


def manifest_entry(fname: str, samples: int, transcript: str, duration: float | None = None) -> dict:
    seconds = samples / RATE
    return {
        "files": [{"channels": 1, "sample_rate": float(RATE), "bitrate": 16, "duration": seconds,
                   "num_samples": samples, "encoding": "Signed Integer PCM", "silent": False,
                   "fname": fname, "speed": 1}],
        "original_duration": seconds if duration is None else duration,
        "original_num_samples": samples,
        "transcript": transcript,
    }


@dataclass(frozen=True)
class LibriSpeechReport:
    utterances: int
    words: int
    characters: int  # distinct characters over all transcripts
    word_counts: tuple[int, ...]
    shuffled_accuracy: float  # (1 - WER) % of the transcripts scored against a shuffled order


def write_librispeech(out: Path, count: int, seed: int,
                      transcribe: Callable[[np.ndarray], str]) -> LibriSpeechReport:
    """Write `count` utterances (+1 filtered) under `out`, transcribed by `transcribe`."""
    import soundfile

    rng = np.random.default_rng(seed + 31)
    entries, transcripts = [], []
    for i in range(count):
        path = out / wav_name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        # dev-clean has no silent utterance: one the teacher hears as nothing is drawn again
        # (a few in a thousand are), and only a model that hears nothing at all is refused.
        for _ in range(MAX_REDRAWS):
            soundfile.write(str(path), synthetic_waveform(rng), RATE, subtype="PCM_16")
            read_back = librispeech.load_waveform(out, i, librispeech.Utterance(wav_name(i), "", 0.0))
            text = " ".join(transcribe(read_back).split())
            if text:
                break
        else:
            raise ValueError(f"the model decodes utterance {i} as nothing in {MAX_REDRAWS} draws")
        transcripts.append(text)
        entries.append(manifest_entry(wav_name(i), len(read_back), text))
    # On paper over 15 s (only the manifest's duration is filtered on): not a QSL sample.
    entries.insert(min(1, len(entries)), manifest_entry(wav_name(0), len(read_back), "filtered out", 16.5))
    write_atomic(librispeech.manifest_path(out), (json.dumps(entries, indent=1) + "\n").encode())
    report = diversity(transcripts)
    if report.characters < MIN_CHARACTERS:
        raise ValueError(f"the transcripts use only {report.characters} distinct characters")
    if len(set(report.word_counts)) < 2 and count > 1:
        raise ValueError("every transcript has the same number of words")
    if report.shuffled_accuracy > MAX_SHUFFLED_ACCURACY:
        raise ValueError(f"a shuffled order still scores {report.shuffled_accuracy:.1f}% "
                         f"(over {MAX_SHUFFLED_ACCURACY:g}%)")
    return report


def diversity(transcripts: Sequence[str]) -> LibriSpeechReport:
    """How different the transcripts are; "shuffled" scores each against its neighbour's."""
    from fleet.harness.accuracy.librispeech import word_error_rate

    shuffled = [transcripts[(i + 1) % len(transcripts)] for i in range(len(transcripts))]
    return LibriSpeechReport(
        utterances=len(transcripts),
        words=sum(len(t.split()) for t in transcripts),
        characters=len(set("".join(transcripts))),
        word_counts=tuple(len(t.split()) for t in transcripts),
        shuffled_accuracy=(1 - word_error_rate(shuffled, transcripts)) * 100,
    )
