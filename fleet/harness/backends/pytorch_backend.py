"""PyTorch backend: CPU by default, CUDA selectable, never a silent fallback from one to the other.

Tasks whose reference model exists only as a PyTorch checkpoint (RNN-T, DLRM-v2, GPT-J) build
their network from it (`Task.torch_model`): the checkpoint holds weights, the task knows the
architecture. The backend owns what is common to all of them: importing torch only when used,
the device, the thread pool sized like onnxruntime's (one thread per physical core, or per
usable CPU under an affinity mask or cgroup quota), inference mode (no autograd), and the
versions that go into the manifest.

Two ways in, both from the harness's one inference thread:
- `run(feed, n)`: numpy feed in, numpy outputs out, one forward call (single-program models);
- `program(name)`: a named part of the model (a submodule or method), called with torch
  tensors under inference mode, for a task whose `infer` drives the model step by step (a
  decode loop, generation) and must not pay a numpy round trip per step.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.backends import BackendOptions
from fleet.harness.errors import HarnessError
from fleet.harness.nodeinfo import intra_op_threads
from fleet.harness.tasks.base import Task

DEVICES = ("cpu", "cuda")
MAX_USEFUL_BATCH = {"cpu": 32, "cuda": 128}


def import_torch() -> Any:
    """torch, or one line saying how a node gets it."""
    try:
        import torch
    except ImportError:
        raise HarnessError("the pytorch backend needs torch on this node: install mlperf-fleet[torch] "
                           "(fleet run deploys it to hosts with fleet_backend=pytorch)") from None
    return torch


def _set_threads(torch: Any, threads: int) -> None:
    torch.set_num_threads(threads)
    # One inference thread: no inter-op parallelism to feed. A second backend in the same
    # process (the tuner) cannot set it again; it stays as it was.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class PyTorchBackend:
    name = "pytorch"
    needs_feed = True

    def __init__(self, model: Path | None, task: Task, options: BackendOptions) -> None:
        if model is None or not Path(model).is_file():
            raise HarnessError(f"model {model} does not exist")
        torch = self._torch = import_torch()
        device = (options.execution_provider or "cpu").lower()
        if device not in DEVICES:
            raise HarnessError(f"the pytorch backend runs on {' or '.join(DEVICES)}, not {device!r}; "
                               f"use fleet_backend=onnxruntime for {device}")
        if device == "cuda" and not torch.cuda.is_available():
            raise HarnessError(f"CUDA is not available to this torch {torch.__version__} "
                               f"(a CPU build, or no GPU/driver); refusing to fall back to the CPU")
        if options.threads is not None and options.threads < 1:
            raise HarnessError("--threads must be at least 1")
        self.threads = int(options.threads or intra_op_threads()[0])
        _set_threads(torch, self.threads)
        self.device = torch.device(device)
        self.execution_provider = device
        self.max_useful_batch = MAX_USEFUL_BATCH[device]
        with torch.inference_mode():
            module = task.torch_model(Path(model))
        self.module = module.eval().to(self.device)
        self._outputs = [spec.name for spec in task.outputs]

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in feed.items()}
            out = self.module(**args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return {name: t.cpu().numpy() for name, t in zip(self._outputs, out, strict=True)}

    def program(self, name: str) -> Callable[..., Any]:
        """The model's part `name`, called with torch tensors under inference mode."""
        part = getattr(self.module, name, None)
        if part is None or not callable(part):
            raise HarnessError(f"the loaded {type(self.module).__name__} has no part {name!r}")

        @functools.wraps(part)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._torch.inference_mode():
                return part(*args, **kwargs)

        return call

    def versions(self) -> dict[str, str]:
        torch = self._torch
        found = {"torch": str(torch.__version__)}
        if self.device.type == "cuda":
            found["cuda"] = str(torch.version.cuda)
        return found

    def close(self) -> None:
        self.module = None
