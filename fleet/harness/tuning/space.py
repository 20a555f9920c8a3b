"""Which backend settings are worth trying for a scenario on this node, and where to start.

The space follows the node, not a fixed list: thread counts up to the CPUs this process may
use (affinity and cgroup quota: an edge box capped to one CPU never tries two), execution
providers the installed onnxruntime really has within the accelerator the inventory names
(a GPU node may try CUDA against TensorRT; a CPU node stays on CPU, as its system
description says), batch sizes up to the task's limit. Thread counts are searched for every
backend whose pool runs on the CPUs (onnxruntime and pytorch); graph levels and providers
are onnxruntime's. A knob the inventory pins
(fleet_threads, fleet_batch_size) or the spec sets has exactly that one value. The start is
what the harness would pick untuned, so the winner is never worse than the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleet.harness.backends import CPU_POOL_BACKENDS
from fleet.harness.planning import BATCH_LADDER, OFFLINE_FIRST_BATCH
from fleet.harness.spec import Tuning

GRAPH_LEVELS = ("all", "extended", "basic")  # "disable" never wins on a real model
GPU_PROVIDERS = ("cuda", "tensorrt")
ORT_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                      "tensorrt": "TensorrtExecutionProvider"}
# Batch sizes and thread counts are ordered: the search hill-climbs them.
ORDERED = frozenset({"threads", "batch_size"})


@dataclass(frozen=True)
class KnobSpace:
    """Candidate values per knob (only knobs with a choice) and the starting settings."""

    values: dict[str, list[Any]]
    start: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)  # knobs with one possible value

    def as_dict(self) -> dict[str, Any]:
        return {"values": self.values, "start": self.start, "fixed": self.fixed}


def thread_counts(usable: int) -> list[int]:
    """1, and usable halved until 1: [1, 2] for 2 CPUs, [1, 2, 4, 8, 16] for 16, [1, 3, 6] for 6."""
    counts = {1}
    n = max(1, usable)
    while n >= 1:
        counts.add(n)
        n //= 2
    return sorted(counts)


def batch_ladder(cap: int | None, first: int = 1) -> list[int]:
    top = cap or BATCH_LADDER[-1]
    ladder = [b for b in BATCH_LADDER if first <= b <= top]
    return ladder or [min(top, first)]


def providers_for(requested: str | None, available: list[str]) -> list[str]:
    """Execution providers to try: the requested one first, other GPU ones present on the node."""
    first = (requested or "cpu").lower()
    if first not in GPU_PROVIDERS:
        return [first]
    others = [p for p in GPU_PROVIDERS if p != first and ORT_PROVIDER_NAMES[p] in available]
    return [first, *others]


def knob_space(scenario: str, backend: str, pins: Tuning, *, usable_cpus: int, max_batch: int | None,
               start_batch: int | None, available_providers: list[str],
               server_threads: int | None = None) -> KnobSpace:
    """The search space for `scenario` (batch only matters for Offline and Server).

    `server_threads` is the harness's untuned Server pool (a CPU fewer than usable): Server
    tries no bigger pool. Its knob trials score Offline throughput, where a pool over every
    CPU wins, yet in Server that pool starves LoadGen's threads and the latency tail fails
    the bound (nodeinfo.server_intra_op_threads).
    """
    candidates: dict[str, list[Any]] = {}
    if backend in CPU_POOL_BACKENDS:
        counts = thread_counts(usable_cpus)
        if scenario == "Server" and server_threads:
            cap = min(server_threads, usable_cpus)
            counts = sorted({*(c for c in counts if c <= cap), cap})
        candidates["threads"] = [pins.threads] if pins.threads else counts
    if backend == "onnxruntime":
        candidates["graph_optimization"] = ([pins.graph_optimization] if pins.graph_optimization
                                            else list(GRAPH_LEVELS))
        candidates["execution_provider"] = providers_for(pins.execution_provider, available_providers)
    if scenario in ("Offline", "Server"):
        pinned = (pins.server_max_batch or pins.batch_size) if scenario == "Server" else pins.batch_size
        if pinned:
            candidates["batch_size"] = [pinned]
        else:
            first = OFFLINE_FIRST_BATCH if scenario == "Offline" else 1
            candidates["batch_size"] = batch_ladder(max_batch, first)
    start = {name: values[0] for name, values in candidates.items()}
    if "threads" in start:  # the harness default: the biggest pool (Server: server_threads)
        start["threads"] = candidates["threads"][-1]
    if start_batch is not None and start_batch in candidates.get("batch_size", []):
        start["batch_size"] = start_batch
    values = {name: vals for name, vals in candidates.items() if len(vals) > 1}
    fixed = {name: vals[0] for name, vals in candidates.items() if len(vals) == 1}
    return KnobSpace(values, start, fixed)
