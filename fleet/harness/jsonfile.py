"""JSON files: read one someone wrote (turning "missing" and "not JSON" into the caller's own
error), write one atomically.

Here, not in the controller, because the node-side spec reader needs it and the harness package
imports nothing from the controller; the controller's run.json and collected manifests use it too.
Standard library only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_json(path: Path, error: Callable[[str], Exception], missing: str, invalid: str,
              **names: object) -> Any:
    """The parsed content of `path`, or `error(message)` saying which of the two went wrong.

    `missing` and `invalid` are format strings over `{path}` and `names`; `invalid` may also
    name `{exc}` (the parser's complaint, with line and column).
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(missing.format(path=path, **names)) from None
    except json.JSONDecodeError as exc:
        raise error(invalid.format(path=path, exc=exc, **names)) from None


def write_json(path: Path, data: Any, default: Callable[[Any], Any] | None = None) -> None:
    """Indented JSON via a temp file and a rename: a reader, or the next run after a killed
    writer, sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_listing(path: Path, what: str, key: str, hint: str, fmt: str) -> dict[str, Any]:
    """A dataset's JSON index (COCO annotations, SQuAD file) holding a list under `key`.

    FileNotFoundError when it is missing, ValueError when it is not JSON or lacks the list:
    the tasks turn those into the harness's one-line errors naming the file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found (expected {hint})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ValueError(f"{what} {path} has no {key!r} list (not {fmt} format)")
    return data


def from_known_fields(cls: type[T], data: dict[str, Any]) -> T:
    """A dataclass from a dict, ignoring keys it lacks: a newer fleet may have written more."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in known})
