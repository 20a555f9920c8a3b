"""onnxruntime backend: CPU by default, CUDA and TensorRT execution providers selectable.

One session, driven by the harness's single inference thread, so onnxruntime's intra-op pool
owns the cores: extra Python worker threads calling run() concurrently only fight the pool
for the same cores, which is what costs the reference harness ~15% on CPU. The pool has one
thread per physical core, or, on a node constrained by affinity or a cgroup CPU quota, one
per usable CPU (never os.cpu_count(), which ignores both).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fleet.harness.backends import BackendOptions, run_anywhere
from fleet.harness.errors import HarnessError, one_line
from fleet.harness.nodeinfo import intra_op_threads
from fleet.harness.tasks.base import Task, TensorSpec

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
GRAPH_OPT = ("disable", "basic", "extended", "all")
_ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)",
              "int32": "tensor(int32)", "uint8": "tensor(uint8)", "int8": "tensor(int8)",
              "bool": "tensor(bool)"}


def _check_tensor(kind: str, spec: TensorSpec, found, model: Path) -> None:
    if found is None:
        raise HarnessError(f"model {model} does not fit the task: no {kind} named {spec.name!r}")
    want = _ORT_TYPES.get(spec.dtype, spec.dtype)
    if found.type != want:
        raise HarnessError(f"model {model} does not fit the task: {kind} {spec.name!r} is {found.type}, "
                           f"expected {want}")
    shape = list(found.shape or [])
    if len(shape) != len(spec.shape) + 1 or any(
        isinstance(got, int) and got != exp for got, exp in zip(shape[1:], spec.shape, strict=True)
    ):
        raise HarnessError(f"model {model} does not fit the task: {kind} {spec.name!r} has shape {shape}, "
                           f"expected [N, {', '.join(map(str, spec.shape))}]".replace(", ]", "]"))


def _task_inputs(task: Task, names: list[str], model: Path) -> tuple[TensorSpec, ...]:
    """The task's inputs in the model's naming convention; one line when it accepts none of them."""
    try:
        return task.inputs_for(names)
    except ValueError as exc:
        raise HarnessError(f"model {model} does not fit the task: {one_line(exc)}") from None


# Largest batch worth trying per execution provider: CPU kernels stop gaining well before 32
# while a batch's latency and memory keep growing.
MAX_USEFUL_BATCH = {"cpu": 32, "cuda": 128, "tensorrt": 128}


class OnnxRuntimeBackend:
    name = "onnxruntime"
    needs_feed = True
    precision = "fp32"

    def __init__(self, model: Path | None, task: Task, options: BackendOptions) -> None:
        if model is None or not Path(model).is_file():
            raise HarnessError(f"model {model} does not exist")
        model = Path(model)
        if (options.precision or "fp32") != "fp32":
            raise HarnessError(f"onnxruntime runs the precision its model file was exported in, not "
                               f"{options.precision!r}: give a model exported in it, or run fp32 (leave "
                               "precision unset)")
        import onnxruntime as ort

        ep = (options.execution_provider or "cpu").lower()
        if ep not in PROVIDERS:
            raise HarnessError(f"unknown execution provider {ep!r} (choose from {', '.join(PROVIDERS)})")
        providers = PROVIDERS[ep]
        if providers[0] not in ort.get_available_providers():
            raise HarnessError(f"execution provider {providers[0]} is not available in this onnxruntime "
                               f"({', '.join(ort.get_available_providers())}); install onnxruntime-gpu")
        level = (options.graph_optimization or "all").lower()
        if level not in GRAPH_OPT:
            raise HarnessError(f"unknown graph optimization level {level!r} "
                               f"(choose from {', '.join(GRAPH_OPT)})")
        if options.threads is not None and options.threads < 1:
            raise HarnessError("--threads must be at least 1")
        threads, constrained = intra_op_threads()
        self.threads = int(options.threads or threads)
        so = ort.SessionOptions()
        # Unconstrained node: leave the pool size to onnxruntime (one thread per physical core,
        # its own thread placement), exactly what a plain session gets.
        so.intra_op_num_threads = self.threads if (options.threads or constrained) else 0
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(model), so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HarnessError(f"model {model}: onnxruntime cannot load it: {first}") from None
        if self._session.get_providers()[0] != providers[0]:
            raise HarnessError(f"onnxruntime fell back from {providers[0]} to "
                               f"{self._session.get_providers()[0]} (missing CUDA/TensorRT libraries?)")
        self.execution_provider = providers[0]
        self.max_useful_batch = MAX_USEFUL_BATCH[ep]
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        specs = _task_inputs(task, list(inputs), model)
        for spec in specs:
            _check_tensor("input", spec, inputs.get(spec.name), model)
        extra = sorted(set(inputs) - {s.name for s in specs})
        if extra:
            raise HarnessError(f"model {model} does not fit the task: unexpected input(s) {', '.join(extra)}")
        for spec in task.outputs:
            _check_tensor("output", spec, outputs.get(spec.name), model)
        self._outputs = [s.name for s in task.outputs]
        self._version = ort.__version__

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, feed), strict=True))

    def pinned(self, call: Callable[..., Any]) -> Callable[..., Any]:
        return run_anywhere(call)

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": self._version}

    def close(self) -> None:
        self._session = None
