"""Where the controller finds its Ansible content (playbooks/, roles/, inventory/).

In a source checkout (editable install, tests) they sit beside the `fleet` package; a
regular wheel install puts them under `<prefix>/share/mlperf-fleet/` (pyproject data-files).
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from fleet.errors import ConfigError

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _candidates() -> list[Path]:
    roots = [SOURCE_ROOT]
    for prefix in {sys.prefix, sysconfig.get_path("data")}:
        roots.append(Path(prefix) / "share" / "mlperf-fleet")
    return roots


def resource_dir(name: str) -> Path:
    """The first `<root>/<name>` that exists (name: playbooks, roles or inventory)."""
    for root in _candidates():
        if (root / name).is_dir():
            return root / name
    looked = ", ".join(map(str, _candidates()))
    raise ConfigError(f"cannot find the fleet's {name}/ directory (looked in {looked})")


def source_tree() -> Path | None:
    """The project's source tree (to build the node wheel from), if this is a checkout."""
    if (SOURCE_ROOT / "pyproject.toml").is_file() and (SOURCE_ROOT / "fleet").is_dir():
        return SOURCE_ROOT
    return None
