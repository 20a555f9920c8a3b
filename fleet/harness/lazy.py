"""Registries name their entries as "module:attribute" strings, imported only when used.

Tasks, backends and synthetic generators pull in heavy libraries (torch, onnxruntime,
OpenCV); a registry of strings lets the controller and `--help` list them without importing
any, and `load` imports the one that is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(target: str) -> Any:
    """The attribute `target` ("package.module:name") names, its module imported now."""
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)
