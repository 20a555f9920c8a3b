"""Inference backends, looked up by name and imported only when used.

Importing `fleet.harness` (or this package) never imports onnxruntime or torch: a controller
without them can read specs and manifests, and the null backend runs without any runtime.

Every backend implements `Backend`: one `run(feed, n)` call per batch from the harness's
single inference thread, returning `{output name: array with a batch axis of n}`. A backend
whose models come in parts (pytorch) also offers `program(name)`, a part called with its
native tensors, for tasks whose `infer` drives the model step by step.

Which backends have a model for a task is the task's `model_backends`; the null backend needs
none and runs every task.
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
    "pytorch": "fleet.harness.backends.pytorch_backend:PyTorchBackend",
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


def model_problem(task_name: str, model_backends: tuple[str, ...], backend: str) -> str | None:
    """Why `backend` cannot run the task (unknown, or no model for it), as one line; None if it can."""
    if backend not in REGISTRY:
        return f"unknown backend {backend!r} (choose from {', '.join(backend_names())})"
    if backend != "null" and backend not in model_backends:
        return (f"{task_name} has no {backend} model (its reference model is for "
                f"{', '.join(model_backends)}): use backend {model_backends[0]} for {task_name}")
    return None


def open_backend(name: str, model: Path | None, task: Task, options: BackendOptions) -> Any:
    """A ready backend; HarnessError for an unknown name, a missing or mismatched model."""
    problem = model_problem(task.name, task.model_backends, name)
    if problem:
        raise HarnessError(problem)
    target = REGISTRY[name]
    module_name, cls_name = target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)(model, task, options)
