"""3D-UNet accuracy: mean DICE over kidney and tumor, as the v3.1 `accuracy_kits.py` computes it.

Each log entry's payload is a case's uint8 labels, reshaped to the index's `image_shape`;
QSL index i is `file_list[i]`. As in the reference: the log must hold exactly one entry per
case (no de-duplication); per case, "kidney" is label == 1 and "tumor" label == 2 (tumor is
not merged into kidney), dice = (2 |A & B| + 1e-6) / (|A| + |B| + 1e-6) in float64, the
composite is their mean, and the summary is the mean over cases of each column. The ground
truth is the preprocessed grid's `nifti/<case>/segmentation.nii.gz`, read with nibabel as the
reference reads it. The script writes NIfTI predictions and reloads them; that round trip
returns the same uint8 labels, so they are compared directly here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.accuracy.log import read_entries, responses
from fleet.harness.tasks import kits19

SMOOTH = 1e-6


@dataclass(frozen=True)
class DiceResult:
    mean: float  # composite DICE averaged over cases (the checker's metric)
    kidney: float
    tumor: float
    per_case: dict[str, tuple[float, float]]  # case -> (kidney, tumor)
    text: str  # what accuracy_kits.py prints (accuracy.txt without the hash line)


def case_dice(prediction: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(kidney, tumor) DICE of one case's labels against its ground truth."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {list(prediction.shape)} and ground truth {list(target.shape)} "
                         "differ in shape")
    scores = []
    for label in (1, 2):
        pred, true = prediction == label, target == label
        intersection = float(np.count_nonzero(pred & true))
        total = float(np.count_nonzero(pred)) + float(np.count_nonzero(true))
        scores.append((2.0 * intersection + SMOOTH) / (total + SMOOTH))
    return scores[0], scores[1]


def summary_text(mean: float, kidney: float, tumor: float) -> str:
    return f"Accuracy: mean = {mean:.5f}, kidney = {kidney:.4f}, tumor = {tumor:.4f}\nDone!\n"


def score_accuracy_log(accuracy_log: Path, dataset_dir: Path) -> DiceResult:
    """Mean DICE of a LoadGen accuracy log; ValueError (one line) for a log that does not fit."""
    cases = kits19.list_cases(dataset_dir)
    entries = read_entries(accuracy_log)
    if len(entries) != len(cases):
        raise ValueError(f"the log holds {len(entries)} responses for {len(cases)} cases (the reference "
                         "scores one response per case: an accuracy run's log)")
    predictions: dict[str, np.ndarray] = {}
    for response in responses(entries, len(cases), "cases"):
        case = cases[response.qsl_idx]
        data = np.frombuffer(response.data, dtype=np.uint8)
        if data.size != int(np.prod(case.image_shape)):
            raise ValueError(f"{case.name}: the response holds {data.size} labels, the case has "
                             f"{int(np.prod(case.image_shape))} voxels {list(case.image_shape)}")
        predictions[case.name] = data.reshape(case.image_shape[1:])
    if len(predictions) != len(entries):
        raise ValueError("the log answers some case twice and another not at all")
    per_case = {case.name: case_dice(predictions[case.name], kits19.load_segmentation(dataset_dir, case))
                for case in cases}
    scores = np.array(list(per_case.values()), dtype=np.float64)
    kidney, tumor = (float(v) for v in scores.mean(axis=0))
    mean = float(scores.mean(axis=1).mean())
    return DiceResult(mean, kidney, tumor, per_case, summary_text(mean, kidney, tumor))
