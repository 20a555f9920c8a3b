"""Inference backends, looked up by name and imported only when used.

Importing `fleet.harness` (or this package) never imports onnxruntime or torch: a controller
without them can read specs and manifests, and the null backend runs without any runtime.

Every backend implements `Backend`: one `run(feed, n)` call per batch from the harness's
single inference thread, returning `{output name: array with a batch axis of n}`, and
`pinned(call)`: `call` made to run where the backend's runtime wants its calls (pytorch: on
the one thread that owns its OpenMP pool; the others: `call` itself). The SUT and the
calibrator run every batch through `pinned`, so a wrapper must pass it on (`run_anywhere`
is the implementation of a backend with no such thread). A backend whose models come in
parts (pytorch) also offers `program(name)`, a part called with its native tensors, for
tasks whose `infer` drives the model step by step.

Which backends have a model for a task is the task's `model_backends`; the null backend needs
none and runs every task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fleet.harness.errors import HarnessError
from fleet.harness.lazy import load
from fleet.harness.nodeinfo import server_intra_op_threads
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
    precision: str | None = None  # fp32 (default) | bf16 | fp16, where the backend and device run it
    null_sample_ms: float | None = None  # the null backend's stand-in cost per sample (Tuning)


class Backend(Protocol):
    name: str
    execution_provider: str
    threads: int
    needs_feed: bool  # False: the harness may skip gathering inputs (null backend)
    max_useful_batch: int  # the largest batch the harness's batch-size search tries
    precision: str  # what the model computes in: fp32, bf16 or fp16 (manifest, measurements json)

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]: ...

    def pinned(self, call: Callable[..., Any]) -> Callable[..., Any]: ...

    def versions(self) -> dict[str, str]: ...

    def close(self) -> None: ...


def run_anywhere(call: Callable[..., Any]) -> Callable[..., Any]:
    """`Backend.pinned` of a backend that any thread may call: the call itself."""
    return call


# Backends whose intra-op pool runs on this node's CPUs (threads is theirs to size).
CPU_POOL_BACKENDS = ("onnxruntime", "pytorch")


def scenario_options(backend: str, options: BackendOptions, scenario: str) -> BackendOptions:
    """The options a scenario opens the backend with: Server's default CPU pool leaves a CPU free.

    In Server, LoadGen's issue thread and the batcher wake beside inference; a pool over every
    CPU has a thread preempted at each wake-up and every parallel section waits for it
    (nodeinfo.server_intra_op_threads). Only when nothing pins the thread count and the pool
    computes on the CPU: an accelerator's pool only feeds it, and a tuned or given count is
    kept as it is.
    """
    cpu = (options.execution_provider or "cpu").lower() == "cpu"
    if scenario == "Server" and options.threads is None and cpu and backend in CPU_POOL_BACKENDS:
        return replace(options, threads=server_intra_op_threads())
    return options


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
    return load(REGISTRY[name])(model, task, options)
