"""PyTorch backend: CPU by default, CUDA selectable, never a silent fallback from one to the other.

Tasks whose reference model exists only as a PyTorch checkpoint (RNN-T, DLRM-v2, GPT-J) build
their network from it (`Task.torch_model`): the checkpoint holds weights, the task knows the
architecture. The backend owns what is common to all of them: importing torch only when used,
the device, the thread pool sized like onnxruntime's (one thread per physical core, or per
usable CPU under an affinity mask or cgroup quota), inference mode (no autograd), and the
versions that go into the manifest, and the precision: fp32 by default, bf16 or fp16 where
the device computes it natively (refused in one line where it would be emulated); the model
is cast to it at load, floating feeds on the way in, and outputs come back as float32 numpy.

Every torch call runs on one thread the backend owns: loading, `run`, and (through `pinned`,
which the SUT applies) a task's whole `infer`. PyTorch's OpenMP pool belongs to the thread
that first runs a parallel op; the SUT's inference happens on several threads over a run
(calibration, the Offline and Server workers, LoadGen's issue thread), and each of them
would start a pool of its own. With more pool threads than CPUs, libgomp throttles its
spin-waiting, and a decode loop of many small ops then waits on every wake-up: measured on
2 CPUs, RNN-T decoding ran at 0.75x. One thread, one pool; the hand-off costs one queue
round trip per batch.

Two ways in:
- `run(feed, n)`: numpy feed in, numpy outputs out, one forward call (single-program models);
- `program(name)`: a named part of the model (a submodule or method), called with torch
  tensors under inference mode, for a task whose `infer` drives the model step by step (a
  decode loop, generation) and must not pay a numpy round trip per step.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.backends import BackendOptions
from fleet.harness.digest import model_files
from fleet.harness.errors import HarnessError
from fleet.harness.nodeinfo import intra_op_threads
from fleet.harness.tasks.base import Task

DEVICES = ("cpu", "cuda")
MAX_USEFUL_BATCH = {"cpu": 32, "cuda": 128}
# Precision -> torch dtype name. fp32 is the default; the others only where the device
# computes them natively (precision_problem).
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo; empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def precision_problem(precision: str, device: str, *, gpu_bf16: bool, flags: frozenset[str]) -> str | None:
    """Why `precision` cannot run on `device` natively, as one line; None if it can.

    A precision the device only emulates would measure the emulation, not the system: CUDA
    runs fp16 always and bf16 where the GPU has it (Ampere and later); a CPU runs bf16 with
    AVX512-BF16 or AMX, and fp16 through slow fallbacks only.
    """
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})"
    if precision == "fp32":
        return None
    if device == "cuda":
        if precision == "bf16" and not gpu_bf16:
            return "this GPU does not compute bf16 (it needs Ampere or later): use fp16 or fp32"
        return None
    if precision == "fp16":
        return "fp16 on the CPU runs through slow fallbacks: use bf16 (AVX512-BF16 or AMX) or fp32"
    if not flags & CPU_BF16_FLAGS:
        return ("bf16 on this CPU would be emulated: it has neither AVX512-BF16 nor AMX-BF16 "
                "(/proc/cpuinfo flags); use fp32")
    return None


def import_torch() -> Any:
    """torch, or one line saying how a node gets it."""
    try:
        import torch
    except ImportError:
        raise HarnessError("the pytorch backend needs torch on this node: install mlperf-fleet[torch] "
                           "(fleet run deploys it to hosts whose jobs run on pytorch)") from None
    return torch


def _check_memory(torch: Any, task: Task, model: Path, precision: str, device: str) -> int:
    """Refuse, before loading, a model the device cannot hold (fleet/harness/capacity.py); the
    largest batch its memory holds (no limit where the task does not say)."""
    from fleet.harness.capacity import device_refusal
    from fleet.harness.hostfacts import meminfo_bytes

    need = task.memory_need(model, precision)
    if need is None:
        return MAX_USEFUL_BATCH[device]
    if device == "cuda":
        have, what = int(torch.cuda.mem_get_info()[0]), "free GPU"
    else:
        have, what = meminfo_bytes("MemAvailable"), "available"
    if have is None:
        return MAX_USEFUL_BATCH[device]
    problem = device_refusal(need, have, what, precision)
    if problem:
        raise HarnessError(f"{task.name} cannot load here: {problem}")
    return need.largest_batch(have)


def _set_threads(torch: Any, threads: int) -> None:
    torch.set_num_threads(threads)
    # One inference thread: no inter-op parallelism to feed. A second backend in the same
    # process (the tuner) cannot set it again; it stays as it was.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class _OwnThread:
    """One long-lived thread that runs the calls handed to it, in order, and returns their results.

    Any number of threads may call at once; each waits for its own result. `close()` lets
    every call already handed over finish, then ends the thread; a call after that is refused
    with a HarnessError instead of waiting forever for a thread that is gone.
    """

    def __init__(self, name: str = "fleet-torch") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders hand-overs against close()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, kwargs, box, done = job
            try:
                box.append((True, fn(*args, **kwargs)))
            except BaseException as exc:  # handed back to the caller, raised there
                box.append((False, exc))
            done.set()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is self._thread:  # already here (run() inside a pinned infer)
            return fn(*args, **kwargs)
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        with self._lock:
            if self._closed:
                raise HarnessError("the pytorch backend was closed: open a new one to run more "
                                   "(a call after close() would wait for a thread that has ended)")
            self._jobs.put((fn, args, kwargs, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Finish the calls handed over so far, then end the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()


class PyTorchBackend:
    name = "pytorch"
    needs_feed = True

    def __init__(self, model: Path | None, task: Task, options: BackendOptions) -> None:
        if model is None or not model_files(Path(model)):
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
        precision = (options.precision or "fp32").lower()
        problem = precision_problem(precision, device, flags=cpu_flags() if device == "cpu" else frozenset(),
                                    gpu_bf16=device == "cuda" and bool(torch.cuda.is_bf16_supported()))
        if problem:
            raise HarnessError(f"the pytorch backend cannot run {precision} here: {problem}")
        batch_cap = _check_memory(torch, task, Path(model), precision, device)
        self.precision = precision
        self.dtype = getattr(torch, PRECISIONS[precision])
        self.threads = int(options.threads or intra_op_threads()[0])
        self.device = torch.device(device)
        self.execution_provider = device
        # The batch sizes the harness tries stop where the memory does (an LLM's per-prompt cache).
        self.max_useful_batch = max(1, min(MAX_USEFUL_BATCH[device], batch_cap))
        self._outputs = [spec.name for spec in task.outputs]
        self._own = _OwnThread()
        try:
            self.module = self._own.call(self._load, task, Path(model))
        except BaseException:
            self._own.close()
            raise

    def _load(self, task: Task, model: Path) -> Any:
        torch = self._torch
        _set_threads(torch, self.threads)
        with torch.inference_mode():  # the weights and any cast of them are inference tensors
            module = task.torch_model(model)
            return module.eval().to(self.device, dtype=self.dtype)

    def pinned(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """`call` run on the backend's own thread (see the module docstring)."""
        return functools.partial(self._own.call, call)

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        return self._own.call(self._run, feed, n)

    def _run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = {k: self._tensor(v) for k, v in feed.items()}
            out = self.module(**args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        # numpy has no bf16: reduced-precision outputs come back as float32
        return {name: (t.float() if t.is_floating_point() and t.dtype != torch.float32 else t).cpu().numpy()
                for name, t in zip(self._outputs, out, strict=True)}

    def _tensor(self, array: np.ndarray) -> Any:
        """A feed array on the device; floating inputs in the backend's precision."""
        tensor = self._torch.from_numpy(np.ascontiguousarray(array))
        if tensor.is_floating_point():
            return tensor.to(self.device, dtype=self.dtype)
        return tensor.to(self.device)

    def program(self, name: str) -> Callable[..., Any]:
        """The model's part `name`, called with torch tensors under inference mode."""
        part = getattr(self.module, name, None)
        if part is None or not callable(part):
            raise HarnessError(f"the loaded {type(self.module).__name__} has no part {name!r}")

        def in_inference_mode(*args: Any, **kwargs: Any) -> Any:
            with self._torch.inference_mode():
                return part(*args, **kwargs)

        @functools.wraps(part)
        def call(*args: Any, **kwargs: Any) -> Any:  # inline on the backend's thread (in infer)
            return self._own.call(in_inference_mode, *args, **kwargs)

        return call

    def versions(self) -> dict[str, str]:
        torch = self._torch
        found = {"torch": str(torch.__version__)}
        if self.device.type == "cuda":
            found["cuda"] = str(torch.version.cuda)
        return found

    def close(self) -> None:
        """Drain the calls already handed over, then drop the model; later calls are refused."""
        self._own.close()
        self.module = None
