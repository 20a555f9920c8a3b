"""RNN-T on LibriSpeech dev-clean: the `rnnt` task (PyTorch only, as the v3.1 reference).

Dataset: the reference's wav layout and manifest (librispeech.py); the QSL holds each
utterance's float32 waveform (utterances differ in length: a ragged sample input). One LoadGen
sample is one utterance, and `infer` runs the reference's timed path on it: feature extraction
(rnnt_features.py), the encoder, and the greedy decode loop over the prediction and joint
networks (rnnt_model.py), each a part of the model the pytorch backend loaded, many calls per
sample. The response is the label ids as int64, 0..27 (the reference's `array('q')`).
Accuracy is accuracy_eval.py's WER (accuracy/librispeech.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.tasks import librispeech
from fleet.harness.tasks.base import AccuracyResult, Indices, Task, TensorSpec, scoring

WAVEFORM = "waveform"  # the QSL's per-utterance samples
FEATURES = "features"  # the encoder's input (T, 1, 240)
TRANSCRIPT = "transcript"  # infer's per-utterance label ids


class RNNT(Task):
    node_extras = ("librispeech",)
    name = "rnnt"
    rules_model = "rnnt"
    max_batch_size = 1  # the reference decodes one utterance at a time
    model_backends = ("pytorch",)
    inputs = (TensorSpec(FEATURES, "float32", (None, 1, 240)),)
    outputs = (TensorSpec(TRANSCRIPT, "int64", (None,)),)
    response_dtype = "int64"

    def __init__(self) -> None:
        self._dataset: Path | None = None
        self._utterances: list[librispeech.Utterance] = []
        self._pipeline: tuple[Any, Any, Any] | None = None  # (backend, features, decoder)

    @property
    def sample_inputs(self) -> tuple[TensorSpec, ...]:
        return (TensorSpec(WAVEFORM, "float32", (None,)),)

    def torch_model(self, path: Path) -> Any:
        from fleet.harness.tasks.rnnt_model import load_rnnt

        return load_rnnt(path)

    def open(self, dataset_dir: Path, cache_dir: Path) -> None:
        # Nothing to cache: waveforms are what the QSL holds; features are part of the timed path.
        self._dataset = Path(dataset_dir)
        self._utterances = librispeech.read_manifest(self._dataset)
        librispeech.check_audio(self._dataset, self._utterances)

    @property
    def total_sample_count(self) -> int:
        return len(self._utterances)

    def dataset_files(self, dataset_dir: Path) -> list[Path]:
        dataset_dir = Path(dataset_dir)
        return [librispeech.manifest_path(dataset_dir),
                *(dataset_dir / u.audio for u in librispeech.read_manifest(dataset_dir))]

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        assert self._dataset is not None, "open() first"
        return {WAVEFORM: librispeech.load_waveform(self._dataset, index, self._utterances[index])}

    def pipeline(self, backend: Any) -> tuple[Any, Any]:
        """(features, decoder) over `backend`'s model parts, built once per backend."""
        if self._pipeline is None or self._pipeline[0] is not backend:
            from fleet.harness.tasks.rnnt_features import FeatureExtractor
            from fleet.harness.tasks.rnnt_model import GreedyDecoder

            decoder = GreedyDecoder(backend.program("encoder"), backend.program("prediction"),
                                    backend.program("joint"), device=backend.device)
            self._pipeline = (backend, FeatureExtractor(device=backend.device), decoder)
        return self._pipeline[1], self._pipeline[2]

    def infer(self, backend: Any, feed: dict[str, Any], n: int) -> dict[str, Any]:
        """Features, encoder and greedy decode for each utterance of the batch."""
        features, decoder = self.pipeline(backend)
        return {TRANSCRIPT: [np.asarray(decoder(*features(w)), dtype=np.int64) for w in feed[WAVEFORM]]}

    def postprocess(self, outputs: dict[str, Any], n: int, *, indices: Indices) -> list[np.ndarray]:
        return list(outputs[TRANSCRIPT])

    def accuracy(self, accuracy_log: Path, dataset_dir: Path) -> AccuracyResult:
        from fleet.harness.accuracy.librispeech import score_accuracy_log

        with scoring("RNN-T", accuracy_log):
            result = score_accuracy_log(accuracy_log, dataset_dir)
        return AccuracyResult(result.text, result.accuracy)
