"""Inference backends, looked up by name and imported only when used.

Importing `fleet.harness` (or this package) never imports onnxruntime: a controller without
it can read specs and manifests, and the null backend runs without any runtime at all.

Every backend implements `Backend`: one `run(feed, n)` call per batch from the harness's
single inference thread, returning `{output name: array with a batch axis of n}`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.tasks.base import Task

REGISTRY: dict[str, str] = {
    "onnxruntime": "fleet.harness.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "null": "fleet.harness.backends.null:NullBackend",
}


@dataclass(frozen=True)
class BackendOptions:
    """Knobs a backend may honour; None lets the backend pick from the node."""

    threads: int | None = None
    execution_provider: str | None = None  # cpu | cuda | tensorrt
    graph_optimization: str | None = None  # disable | basic | extended | all


class Backend(Protocol):
    name: str
    execution_provider: str
    threads: int
    needs_feed: bool  # False: the harness may skip gathering inputs (null backend)
    max_useful_batch: int  # the largest batch the harness's batch-size search tries

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]: ...

    def versions(self) -> dict[str, str]: ...

    def close(self) -> None: ...


def backend_names() -> list[str]:
    return sorted(REGISTRY)


def open_backend(name: str, model: Path | None, task: Task, options: BackendOptions) -> Any:
    """A ready backend; HarnessError for an unknown name, a missing or mismatched model."""
    target = REGISTRY.get(name)
    if target is None:
        raise HarnessError(f"unknown backend {name!r} (choose from {', '.join(backend_names())})")
    module_name, cls_name = target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)(model, task, options)
