"""The controller's artifact store (`--artifacts DIR`) -> one checksummed tar per task.

Layout: `DIR/<task>/` holds the task's model file and dataset directory, named by a
`fleet_assets.json` (or a `fleet_synthetic.json` marker) in the same schema the synthetic
generator writes: `{"model": {"file": ...}, "dataset": {"dir": ...}}`. The tar carries a
SHA256SUMS that the node checks after unpacking; it is built once per content (its key is
the hash of SHA256SUMS), and file hashes are cached by (size, mtime) so a large dataset is
read once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import ArtifactError
from fleet.harness.digest import model_files

MARKERS = ("fleet_assets.json", "fleet_synthetic.json")
# (model file, dataset dir) under DIR/<task>/ when no fleet_assets.json names them. BERT's
# dataset dir holds both dev-v1.1.json and vocab.txt.
DEFAULT_NAMES = {
    "resnet50": ("resnet50_v1.onnx", "imagenet"),
    "retinanet": ("resnext50_32x4d_fpn.onnx", "openimages"),
    "bert-99": ("bert_large_fp32_384.onnx", "squad"),
    "bert-99.9": ("bert_large_fp32_384.onnx", "squad"),
    "3d-unet-99": ("3dunet_kits19_128x128x128.onnx", "kits19"),
    "3d-unet-99.9": ("3dunet_kits19_128x128x128.onnx", "kits19"),
    "dlrm-v2-99": ("dlrm_dcnv2.pt", "criteo"),
    "dlrm-v2-99.9": ("dlrm_dcnv2.pt", "criteo"),
    "gptj-99": ("checkpoint-final", "cnndm"),
    "gptj-99.9": ("checkpoint-final", "cnndm"),
}


@dataclass(frozen=True)
class StoredAssets:
    task: str
    key: str
    tar: Path
    model: str  # relative to the task's asset dir
    dataset: str


def asset_names(task_dir: Path, task: str) -> tuple[str, str]:
    """(model file, dataset dir) of a task directory, from its marker or the known defaults."""
    for name in MARKERS:
        marker = task_dir / name
        if marker.is_file():
            try:
                data = json.loads(marker.read_text(encoding="utf-8"))
                return str(data["model"]["file"]), str(data["dataset"]["dir"])
            except (ValueError, KeyError, TypeError):
                raise ArtifactError(f"{marker} does not name model.file and dataset.dir") from None
    if task in DEFAULT_NAMES:
        return DEFAULT_NAMES[task]
    raise ArtifactError(f"{task_dir} has no fleet_assets.json naming its model file and dataset directory")


def _sha256(path: Path, cache: dict[str, list], changed: list[bool]) -> str:
    st = path.stat()
    key = str(path.resolve())
    hit = cache.get(key)
    if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return str(hit[2])
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    cache[key] = [st.st_size, st.st_mtime_ns, digest.hexdigest()]
    changed[0] = True
    return digest.hexdigest()


def stage_task(store: Path, task: str, cache_dir: Path) -> StoredAssets:
    """Check `store/<task>` and return its tar (built on first use)."""
    src = Path(store) / task
    if not src.is_dir():
        raise ArtifactError(f"artifact store {store} has no {task}/ directory")
    model, dataset = asset_names(src, task)
    if not model_files(src / model):
        raise ArtifactError(f"artifact store: model {src / model} is missing (a file, or a directory "
                            "of files such as a Hugging Face save_pretrained folder)")
    if not (src / dataset).is_dir():
        raise ArtifactError(f"artifact store: dataset {src / dataset} is missing")
    root = Path(cache_dir) / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    cache_file = root / "sha256-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    changed = [False]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    sums = "".join(f"{_sha256(p, cache, changed)}  {p.relative_to(src).as_posix()}\n" for p in files)
    if changed[0]:
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    key = hashlib.sha256(sums.encode()).hexdigest()[:16]
    tar = root / f"{task}-{key}.tar"
    if not tar.exists():
        partial = tar.with_suffix(".partial")
        sums_file = root / f"{task}-{key}.SHA256SUMS"
        sums_file.write_text(sums)
        with tarfile.open(partial, "w") as tf:
            tf.add(sums_file, arcname="SHA256SUMS")
            for p in files:
                tf.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
        os.replace(partial, tar)
        sums_file.unlink()
    return StoredAssets(task=task, key=key, tar=tar, model=model, dataset=dataset)
