"""sha256 of models and datasets, cached by (size, mtime) so big files are hashed once.

The manifest records the digest of the model and dataset of every run; a 100 MB model or a
50 000-image dataset must not be rehashed for each of a node's dozen runs. Per-file digests
are kept in a JSON cache (`$FLEET_DIGEST_CACHE`, default `~/.cache/mlperf-fleet/digests.json`)
keyed by absolute path and valid while size and mtime_ns are unchanged. An unwritable cache
only costs time.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

_LOCK = threading.Lock()
_MEMORY: dict[str, list] = {}
_LOADED_FROM: Path | None = None


def cache_path() -> Path:
    env = os.environ.get("FLEET_DIGEST_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mlperf-fleet" / "digests.json"


def _load() -> None:
    global _LOADED_FROM
    path = cache_path()
    if path == _LOADED_FROM:
        return
    _MEMORY.clear()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            _MEMORY.update({k: v for k, v in data.items() if isinstance(v, list) and len(v) == 3})
    except (OSError, ValueError):
        pass
    _LOADED_FROM = path


def _save() -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(_MEMORY), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def hash_file(path: Path) -> str:
    """sha256 hex of one file, read in 1 MiB blocks; uncached, for files hashed once (a log)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached_sha(path: Path) -> tuple[str, bool]:
    key = str(path.resolve())
    st = path.stat()
    entry = _MEMORY.get(key)
    if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
        return entry[2], False
    sha = hash_file(path)
    _MEMORY[key] = [st.st_size, st.st_mtime_ns, sha]
    return sha, True


def file_sha256(path: Path) -> str:
    """sha256 hex of one file (cached by size and mtime)."""
    with _LOCK:
        _load()
        sha, changed = _cached_sha(Path(path))
        if changed:
            _save()
        return sha


def model_files(model: Path) -> list[Path]:
    """The files a model is: itself, or every file under a model directory in a stable order.

    A model may be a directory (a Hugging Face `save_pretrained` folder with its config,
    weight shards and tokenizer; a sharded checkpoint). Hidden files and `__pycache__` are
    not part of it.
    """
    model = Path(model)
    if model.is_file():
        return [model]
    return sorted(p for p in model.rglob("*") if p.is_file()
                  and not any(part.startswith(".") or part == "__pycache__"
                              for part in p.relative_to(model).parts))


def model_sha256(model: Path) -> str:
    """A model's digest: the file's sha256, or for a directory `tree_sha256` over its files."""
    model = Path(model)
    return file_sha256(model) if model.is_file() else tree_sha256(model, model_files(model))


def tree_sha256(root: Path, files: Iterable[Path]) -> str:
    """One digest for a set of files under root: sha256 of `<sha256>  <relative path>` lines."""
    root = Path(root)
    lines = []
    with _LOCK:
        _load()
        changed = False
        for f in files:
            sha, new = _cached_sha(Path(f))
            changed |= new
            lines.append(f"{sha}  {Path(os.path.relpath(f, root)).as_posix()}\n")
        if changed:
            _save()
    return hashlib.sha256("".join(lines).encode()).hexdigest()
