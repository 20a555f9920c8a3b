"""OUT/manifest.json: one entry per (task, scenario, mode), written atomically after each run.

Schema in docs/contracts.md (`manifest_version: 1`). A rerun replaces its entry; a killed
node leaves the runs it finished. A lock file serialises concurrent harness processes
writing the same OUT.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import platform
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from fleet import __version__
from fleet.harness.jsonfile import write_json
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import MANIFEST_VERSION

MANIFEST = "manifest.json"
_DISTRIBUTIONS = {
    "loadgen": ("mlcommons-loadgen", "mlcommons_loadgen"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "torch": ("torch",),
    "onnx": ("onnx",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python"),
}


def versions() -> dict[str, str | None]:
    """Versions of python, fleet and the node's packages (from metadata: nothing is imported)."""
    found: dict[str, str | None] = {"python": platform.python_version(), "fleet": __version__}
    for key, dists in _DISTRIBUTIONS.items():
        found[key] = None
        for dist in dists:
            try:
                found[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return found


@contextlib.contextmanager
def locked(out: Path, lock_name: str = ".manifest.lock") -> Iterator[None]:
    """Exclusive flock on `out/<lock_name>`: concurrent harness processes update files in turn."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / lock_name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _order(entry: dict[str, Any]) -> tuple:
    scen = entry.get("scenario")
    mode = entry.get("mode")
    return (entry.get("task") or "",
            rules.SCENARIOS.index(scen) if scen in rules.SCENARIOS else 99,
            rules.MODES.index(mode) if mode in rules.MODES else 99, entry.get("repeat") or 0)


def entry_key(entry: dict[str, Any]) -> tuple[Any, Any, Any, int]:
    """(task, scenario, mode, repeat): what one manifest entry is the result of (repeat 0: the job's own)."""
    return (entry.get("task"), entry.get("scenario"), entry.get("mode"), int(entry.get("repeat") or 0))


def record_run(out: Path, entry: dict[str, Any], host: dict[str, Any], vers: dict[str, Any]) -> None:
    """Insert or replace the entry for (task, scenario, mode, repeat) and rewrite the manifest
    atomically."""
    out = Path(out)
    key = entry_key(entry)
    with locked(out):
        current = read_manifest(out) or {}
        runs = [r for r in current.get("runs", []) if entry_key(r) != key]
        runs.append(entry)
        runs.sort(key=_order)
        data = {"manifest_version": MANIFEST_VERSION, "round": rules.ROUND, "host": host,
                "versions": vers, "runs": runs}
        write_json(out / MANIFEST, data)
