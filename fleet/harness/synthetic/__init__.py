"""Synthetic assets for tests and demos: official names, shapes and formats, random weights.

`python -m fleet.harness synth --task resnet50 --out ASSETS [--samples N] [--variant small]`
writes `ASSETS/resnet50_v1.onnx`, `ASSETS/imagenet/` and the marker `ASSETS/fleet_synthetic.json`
(generator, seed, variant, sha256 of the model and digest of the dataset), from which a run's
manifest records `synthetic: true`. Nothing is downloaded; nodes need only the `node` extra.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MARKER = "fleet_synthetic.json"
# Labels of a teacher-labelled set must be diverse at any size: the chance that two different
# samples, drawn at random, carry the same label (what a shuffled sample order scores, about)
# stays under this. A count of distinct labels cannot be met by a skewed teacher at 1024+
# samples over 1000 classes; this bound can, and it still fails a one- or few-class teacher.
MAX_LABEL_COLLISION = 0.05
# task -> "module:function"; function(out: Path, samples: int | None, seed: int, variant: str)
# makes the assets under `out` and returns the marker content (with "model"/"dataset" sha256s).
REGISTRY: dict[str, str] = {
    "resnet50": "fleet.harness.synthetic.resnet50_assets:make_resnet50_assets",
    "retinanet": "fleet.harness.synthetic.retinanet_assets:make_retinanet_assets",
    "bert-99": "fleet.harness.synthetic.bert_assets:make_bert99_assets",
    "bert-99.9": "fleet.harness.synthetic.bert_assets:make_bert999_assets",
    "3d-unet-99": "fleet.harness.synthetic.unet3d_assets:make_unet3d_assets",
    "3d-unet-99.9": "fleet.harness.synthetic.unet3d_assets:make_unet3d_999_assets",
    "rnnt": "fleet.harness.synthetic.rnnt_assets:make_rnnt_assets",
    "dlrm-v2-99": "fleet.harness.synthetic.dlrm_assets:make_dlrm_assets",
    "dlrm-v2-99.9": "fleet.harness.synthetic.dlrm_assets:make_dlrm_999_assets",
    "gptj-99": "fleet.harness.synthetic.gptj_assets:make_gptj_assets",
    "gptj-99.9": "fleet.harness.synthetic.gptj_assets:make_gptj_999_assets",
}

# task -> "module:function"; function(samples: int) -> one line saying what a synthetic set of
# that size takes (DLRM-v2: rows, disk and RAM, which the maker checks; GPT-J: the teacher's
# generation of every reference), for tasks whose sets at the submission profile's size are
# big enough that a run should say so before it starts.
NEEDS: dict[str, str] = {
    "dlrm-v2-99": "fleet.harness.synthetic.dlrm_assets:plan_line",
    "dlrm-v2-99.9": "fleet.harness.synthetic.dlrm_assets:plan_line",
    "gptj-99": "fleet.harness.synthetic.gptj_assets:needs_line",
    "gptj-99.9": "fleet.harness.synthetic.gptj_assets:needs_line",
}


def needs(task: str, samples: int | None) -> str | None:
    """What a sized synthetic set of `task` takes, as one line; None for small sets and other tasks."""
    from fleet.harness.lazy import load

    target = NEEDS.get(task)
    if target is None or samples is None:
        return None
    return load(target)(samples)


def synthesize(task: str, out: Path, samples: int | None = None, seed: int = 0,
               variant: str = "full") -> dict[str, Any]:
    """Make the synthetic assets of `task` under `out`; returns the marker's content."""
    from fleet.harness.errors import HarnessError
    from fleet.harness.lazy import load

    target = REGISTRY.get(task)
    if target is None:
        known = ", ".join(sorted(REGISTRY))
        raise HarnessError(f"no synthetic assets for task {task!r} (available: {known})")
    if samples is not None and samples < 1:
        raise HarnessError("--samples must be at least 1")
    maker = load(target)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    marker = maker(out, samples, seed, variant)
    write_marker(out, marker)
    return marker


def write_marker(out: Path, marker: dict[str, Any]) -> None:
    write_atomic(out / MARKER, (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename: an interrupted synth never leaves half a model or marker to be hashed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def check_variant(variant: str, variants: Sequence[str]) -> None:
    """Refuse a variant the generator does not make, naming the ones it does."""
    if variant not in variants:
        from fleet.harness.errors import HarnessError

        raise HarnessError(f"unknown variant {variant!r} (choose from {', '.join(variants)})")


def sample_count(task: str, samples: int | None, default: int, minimum: int, why: str) -> int:
    """`--samples` or the generator's default, refused in one line below what the set needs."""
    count = default if samples is None else samples
    if count < minimum:
        from fleet.harness.errors import HarnessError

        raise HarnessError(f"--samples must be at least {minimum} for {task} ({why})")
    return count


@contextmanager
def seed_must_label(task: str, seed: int) -> Iterator[None]:
    """A teacher-labelled set this seed makes degenerate (ValueError) is the user's to fix with --seed."""
    try:
        yield
    except ValueError as exc:
        from fleet.harness.errors import HarnessError

        raise HarnessError(f"synthetic {task} assets (seed {seed}): {exc}; try another --seed") from None


def label_collision(labels: Iterable[Any]) -> float:
    """P(two different samples drawn at random share a label): sum c(c-1) / n(n-1) over classes."""
    from collections import Counter

    counts = Counter(labels)
    n = sum(counts.values())
    if n < 2:
        return 0.0
    return sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))


def asset_marker(task: str, seed: int, variant: str, model: Path, dataset: Path,
                 dataset_files: Iterable[Path], **facts: Any) -> dict[str, Any]:
    """Marker content: what made the assets, `facts` about them, and the digests runs check."""
    from fleet import __version__
    from fleet.harness import digest

    return {
        "generator": "fleet.harness.synthetic",
        "fleet_version": __version__,
        "task": task,
        "seed": seed,
        "variant": variant,
        **facts,
        "model": {"file": model.name, "sha256": digest.model_sha256(model)},
        "dataset": {"dir": dataset.name, "sha256": digest.tree_sha256(dataset, dataset_files)},
    }


def find_marker(*paths: Path) -> list[dict[str, Any]]:
    """Markers found in each path or its parent (an asset dir is ASSETS or ASSETS/<dataset>)."""
    found = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        for d in (p if p.is_dir() else p.parent, (p if p.is_dir() else p.parent).parent):
            cand = (d / MARKER).resolve()
            if cand in seen or not cand.is_file():
                continue
            seen.add(cand)
            try:
                found.append(json.loads(cand.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
    return found
