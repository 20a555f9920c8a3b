"""RetinaNet accuracy: COCO mAP over a LoadGen accuracy log, as `tools/accuracy-openimages.py`.

Each log entry's payload is a run of 7-float32 records `[idx, ymin, xmin, ymax, xmax, score,
label]` (box normalised to 0..1); QSL index i is `images[i]` of the annotations. The score is
pycocotools' AP@[.5:.95] over the images seen in the log (so a TEST01 subset is scored on its
subset), printed after the standard 12-line summary as `mAP=<x>%` with 3 decimals, the line
the submission checker reads.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.harness.accuracy.log import first_responses, read_entries
from fleet.harness.tasks.openimages import read_annotations
from fleet.harness.tasks.retinanet_io import decode_payload


@dataclass(frozen=True)
class MapResult:
    map_percent: float  # 100 x AP@[.5:.95]
    text: str  # what the reference script prints (accuracy.txt without the hash line)
    images: int  # distinct images scored
    no_results: int  # images whose payload held no detection
    index_mismatches: int  # records whose embedded index disagrees with the log's qsl_idx


def records_to_coco(records: Any, image: dict[str, Any]) -> list[dict[str, Any]]:
    """Decoded payload records of one image -> COCO detections in original pixels."""
    height, width = image["height"], image["width"]
    out = []
    for _, ymin, xmin, ymax, xmax, score, label in records:
        x0, y0 = float(xmin) * width, float(ymin) * height
        x1, y1 = float(xmax) * width, float(ymax) * height
        out.append(
            {
                "image_id": image["id"],
                "category_id": int(label),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "score": float(score),
            }
        )
    return out


def detections_from_log(
    entries: list[dict[str, Any]], images: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[int], int, int]:
    """De-duplicate by qsl_idx and convert every payload; returns detections, image ids seen,
    images without results and index mismatches."""
    image_ids: list[int] = []
    detections: list[dict[str, Any]] = []
    no_results = mismatches = 0
    for response in first_responses(entries, len(images), "images"):
        idx = response.qsl_idx
        image = images[idx]
        image_ids.append(image["id"])
        records = decode_payload(response.data)
        if len(records) == 0:
            no_results += 1
            continue
        mismatches += int((records[:, 0].astype(int) != idx).sum())
        detections.extend(records_to_coco(records, image))
    return detections, image_ids, no_results, mismatches


def coco_map(
    annotations: dict[str, Any], detections: list[dict[str, Any]], image_ids: list[int]
) -> tuple[float, str]:
    """pycocotools bbox evaluation restricted to image_ids: (AP@[.5:.95], printed summary)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        gt = COCO()
        gt.dataset = annotations
        gt.createIndex()
        if not detections:
            print("no detections in the accuracy log")
            return 0.0, out.getvalue()
        dt = gt.loadRes([dict(d) for d in detections])
        evaluator = COCOeval(gt, dt, iouType="bbox")
        evaluator.params.imgIds = sorted(set(image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), out.getvalue()


def score_entries(entries: list[dict[str, Any]], annotations: dict[str, Any]) -> MapResult:
    detections, image_ids, no_results, mismatches = detections_from_log(entries, annotations["images"])
    ap, summary = coco_map(annotations, detections, image_ids)
    lines = [summary.rstrip("\n")] if summary.strip() else []
    if mismatches:
        lines.append(
            f"ERROR: {mismatches} detection(s) carry an image index that disagrees with loadgen's qsl_idx"
        )
    map_percent = 100.0 * ap
    lines.append(f"mAP={map_percent:.3f}%")
    return MapResult(map_percent, "\n".join(lines) + "\n", len(set(image_ids)), no_results, mismatches)


def score_accuracy_log(log_path: Path, dataset_root: Path) -> MapResult:
    """Score `mlperf_log_accuracy.json` against `ROOT/annotations/openimages-mlperf.json`."""
    entries = read_entries(log_path)
    return score_entries(entries, read_annotations(dataset_root))
