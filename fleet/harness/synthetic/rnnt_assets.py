"""Synthetic RNN-T checkpoint + LibriSpeech-format utterances, made together (teacher-labelled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.harness.synthetic import asset_marker, check_variant, sample_count, seed_must_label, write_atomic

MODEL_FILE = "rnnt.pt"
DATASET_DIR = "librispeech"
DEFAULT_SAMPLES = 16
MIN_SAMPLES = 3  # so a shuffled order and differing lengths can be scored
VARIANTS = ("full", "small")


def make_rnnt_assets(out: Path, samples: int | None, seed: int, variant: str) -> dict[str, Any]:
    import io

    import numpy as np
    import torch

    from fleet.harness.synthetic.librispeech import synthetic_waveform, write_librispeech
    from fleet.harness.synthetic.rnnt import SIZES, build_rnnt, fit_joint, reference_checkpoint
    from fleet.harness.tasks.rnnt import RNNT as RnntTask
    from fleet.harness.tasks.rnnt_features import FeatureExtractor
    from fleet.harness.tasks.rnnt_model import GreedyDecoder, text

    check_variant(variant, VARIANTS)
    samples = sample_count("rnnt", samples, DEFAULT_SAMPLES, MIN_SAMPLES,
                           "a shuffled order and differing lengths must be scorable")
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    model = build_rnnt(SIZES[variant], seed)
    probe_rng = np.random.default_rng(seed + 5)
    with seed_must_label("rnnt", seed):
        fit_joint(model, [synthetic_waveform(probe_rng) for _ in range(8)], seed)
    buffer = io.BytesIO()
    torch.save(reference_checkpoint(model), buffer)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    write_atomic(model_path, buffer.getvalue())

    features = FeatureExtractor()
    decoder = GreedyDecoder(model.encoder, model.prediction, model.joint)
    dataset = out / DATASET_DIR
    with seed_must_label("rnnt", seed):
        report = write_librispeech(dataset, samples, seed, lambda w: text(decoder(*features(w))))
    return asset_marker(
        "rnnt", seed, variant, model_path, dataset, RnntTask().dataset_files(dataset),
        samples=report.utterances,
        words=report.words,
        distinct_characters=report.characters,
        word_counts=list(report.word_counts),
        shuffled_accuracy=round(report.shuffled_accuracy, 2),
    )
