"""Whether a host can hold a task's model, decided on the controller before anything is deployed.

A task says what its model needs at a precision (`Task.memory_need`: GPT-J 6B is 31.7 GB at
fp32 with its beam-search cache); provisioning gathers each host's memory. A host short of it
is refused for that task in one line naming the host, the need and what it has, before the
deploy, assets and bench stages (an LLM that runs out of memory an hour into a run is what
users of other tools complain about most). The pytorch backend checks again on the node, in
front of loading: free GPU memory there, and models the controller never saw (synthetic
assets made on the node, `--model` by hand).
"""

from __future__ import annotations

from pathlib import Path

from fleet.harness.tasks.base import MemoryNeed


def memory_refusal(host: str, task: str, model: Path, precision: str, memory_bytes: int) -> str | None:
    """One line when `host` (with `memory_bytes`) cannot hold `model`; None when it can or no one says."""
    from fleet.harness.tasks import task_class

    need = task_class(task)().memory_need(model, precision)
    if need is None or need.bytes <= memory_bytes:
        return None
    return (f"{host} cannot hold {task}: {need.why}, and {host} has {memory_bytes / 1e9:.1f} GB of memory; "
            f"run it on a host with more{_smaller(precision)}")


def device_refusal(need: MemoryNeed, have: int, what: str, precision: str) -> str | None:
    """The node-side line: the need against the device's `have` bytes of `what` memory."""
    if need.bytes <= have:
        return None
    return (f"{need.why}, and this node has {have / 1e9:.1f} GB of {what} memory: run it where there is "
            f"more{_smaller(precision)}")


def _smaller(precision: str) -> str:
    return (", or at bf16 where its CPU or GPU computes it natively (fleet_tuning: {precision: bf16})"
            if precision == "fp32" else "")
