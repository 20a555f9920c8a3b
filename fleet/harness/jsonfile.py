"""Read a JSON file someone wrote, turning "missing" and "not JSON" into the caller's own error.

Here, not in the controller, because the node-side spec reader needs it and the harness package
imports nothing from the controller; the controller's run.json and collected manifests use it too.
Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
