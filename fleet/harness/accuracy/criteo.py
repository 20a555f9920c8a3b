"""DLRM-v2 accuracy: ROC AUC over every row, as the v3.1 `accuracy-dlrm.py` computes it.

Each response is n float32 pairs `[prediction, label]`, one per row of the aggregated sample
(the labels travel with the predictions, the script's default mode). The first response of a
sample counts (its de-duplication); AUC is scikit-learn's `roc_auc_score(labels, predictions)`
over all rows in log order, accuracy the share of rows whose rounded prediction equals the
label. The text is the script's stdout line for line; the checker reads `^AUC=([\\d\\.]+).*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.accuracy.log import first_responses, read_entries


@dataclass(frozen=True)
class CriteoAccuracy:
    auc: float  # percent
    accuracy: float  # percent
    good: int
    total: int
    queries: int
    text: str


def score_accuracy_log(accuracy_log: Path, samples: int) -> CriteoAccuracy:
    """AUC of a log over a dataset of `samples` aggregated samples; ValueError when unusable."""
    from sklearn.metrics import roc_auc_score

    kept = first_responses(read_entries(accuracy_log), samples, "aggregated samples")
    pairs = [np.frombuffer(r.data, dtype=np.float32) for r in kept]
    for r, p in zip(kept, pairs, strict=True):
        if p.size % 2:
            raise ValueError(f"qsl_idx {r.qsl_idx}: {p.size} float32 values, not [prediction, label] pairs")
    rows = np.concatenate(pairs).reshape(-1, 2) if pairs else np.zeros((0, 2), np.float32)
    predictions, labels = rows[:, 0], rows[:, 1]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("the second value of a pair is not a 0/1 label: the payload must be "
                         "[prediction, label] pairs, in that order")
    classes = len(np.unique(labels))
    if classes < 2:
        raise ValueError(f"the logged labels hold {classes} class(es): "
                         "AUC needs clicks and non-clicks")
    auc = float(roc_auc_score(labels, predictions))
    good = int(np.count_nonzero(np.round(predictions) == labels))
    total = len(rows)
    lines = [
        "Assuming loadgen accuracy log contains ground truth labels.",
        "Parsing loadgen accuracy log...",
        "Calculating AUC metric...",
        f"AUC={100.0 * auc:.3f}%, accuracy={100.0 * good / total:.3f}%, good={good}, total={total}, "
        f"queries={len(kept)}",
    ]
    return CriteoAccuracy(100.0 * auc, 100.0 * good / total, good, total, len(kept), "\n".join(lines) + "\n")
