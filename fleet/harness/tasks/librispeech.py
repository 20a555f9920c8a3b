"""LibriSpeech dev-clean in the reference's layout (what `convert_librispeech.py` writes).

    DIR/dev-clean-wav.json        [{"files": [{"fname": "dev-clean-wav/<spk>/<chap>/<utt>.wav",
                                               "speed": 1, ...}],
                                    "original_duration": seconds, "transcript": "..."}, ...]
    DIR/dev-clean-wav/...wav      16 kHz, 16-bit, mono

QSL index i is the i-th manifest entry that survives the reference's 15 s filter, in manifest
order (2513 of 2703 entries on the shipped manifest). Audio is read with soundfile as float32
in [-1, 1], as the reference's AudioSegment reads it; the reference resamples other rates with
librosa, which fleet does not carry, so a file at another rate is refused with the sox command
that converts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.errors import HarnessError

MANIFEST = "dev-clean-wav.json"
SAMPLE_RATE = 16_000
MAX_DURATION_S = 15.0  # the reference QSL's and accuracy_eval.py's filter
LABELS = (" ", *"abcdefghijklmnopqrstuvwxyz", "'")  # the reference's 28 symbols; blank is 28


@dataclass(frozen=True)
class Utterance:
    audio: str  # path relative to the dataset directory
    transcript: str  # as the manifest has it (the accuracy script normalises it)
    duration: float


def manifest_path(dataset_dir: Path) -> Path:
    return Path(dataset_dir) / MANIFEST


def read_manifest(dataset_dir: Path) -> list[Utterance]:
    """The utterances in QSL order (15 s filter applied); HarnessError naming what is wrong."""
    path = manifest_path(dataset_dir)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"LibriSpeech manifest {path} is missing (the reference's dev-clean-wav.json "
                           f"belongs at the top of the dataset directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"LibriSpeech manifest {path} is unreadable: {exc}") from None
    if not isinstance(entries, list):
        raise HarnessError(f"LibriSpeech manifest {path} is not a JSON list of utterances")
    out = []
    for i, entry in enumerate(entries):
        try:
            duration = float(entry["original_duration"])
            if duration > MAX_DURATION_S:
                continue
            files = [f for f in entry["files"] if f.get("speed", 1) == 1]
            out.append(Utterance(str(files[0]["fname"]), str(entry["transcript"]), duration))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise HarnessError(f"LibriSpeech manifest {path}: entry {i} lacks {exc} "
                               f"(needs files[].fname with speed 1, original_duration, transcript)") from None
    if not out:
        raise HarnessError(f"LibriSpeech manifest {path} has no utterance of at most {MAX_DURATION_S:g} s")
    return out


def check_audio(dataset_dir: Path, utterances: list[Utterance]) -> None:
    """Every file exists and is 16 kHz mono audio soundfile can read (headers only: fast)."""
    import soundfile

    for index, utt in enumerate(utterances):
        path = Path(dataset_dir) / utt.audio
        if not path.is_file():
            raise HarnessError(f"LibriSpeech sample {index}: {path} is missing")
        try:
            info = soundfile.info(str(path))
        except Exception as exc:  # soundfile.LibsndfileError and RuntimeError across versions
            raise HarnessError(f"LibriSpeech sample {index}: {path} is not readable audio ({exc})") from None
        _check_format(index, path, info.samplerate, info.channels)


def _check_format(index: int, path: Path, rate: int, channels: int) -> None:
    if rate != SAMPLE_RATE or channels != 1:
        raise HarnessError(f"LibriSpeech sample {index}: {path} is {rate} Hz with {channels} channel(s), "
                           f"not 16 kHz mono; convert it: sox IN -r 16000 -c 1 -b 16 OUT.wav")


def load_waveform(dataset_dir: Path, index: int, utt: Utterance) -> np.ndarray:
    """The utterance's samples as float32 in [-1, 1] (soundfile's scaling of 16-bit PCM)."""
    import soundfile

    path = Path(dataset_dir) / utt.audio
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise HarnessError(f"LibriSpeech sample {index}: {path} is not readable audio ({exc})") from None
    _check_format(index, path, rate, samples.shape[1])
    return np.ascontiguousarray(samples[:, 0])
