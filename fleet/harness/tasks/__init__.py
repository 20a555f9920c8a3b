"""Task registry: fleet task name -> the module and class implementing it (imported lazily).

The interface every task implements is `tasks.base.Task`. Register a new task here.
"""

from __future__ import annotations

from fleet.harness.errors import HarnessError
from fleet.harness.lazy import load
from fleet.harness.tasks.base import Task

# task name -> "module:Class"
REGISTRY: dict[str, str] = {
    "resnet50": "fleet.harness.tasks.resnet50:ResNet50",
    "retinanet": "fleet.harness.tasks.retinanet:RetinaNet",
    "bert-99": "fleet.harness.tasks.bert:Bert",
    "bert-99.9": "fleet.harness.tasks.bert:Bert999",
    "3d-unet-99": "fleet.harness.tasks.unet3d:UNet3D",
    "3d-unet-99.9": "fleet.harness.tasks.unet3d:UNet3D999",
    "rnnt": "fleet.harness.tasks.rnnt:RNNT",
    "dlrm-v2-99": "fleet.harness.tasks.dlrm:DLRMv2",
    "dlrm-v2-99.9": "fleet.harness.tasks.dlrm:DLRMv2_999",
    "gptj-99": "fleet.harness.tasks.gptj:GPTJ",
    "gptj-99.9": "fleet.harness.tasks.gptj:GPTJ_999",
}


def task_names() -> list[str]:
    return sorted(REGISTRY)


def task_class(name: str) -> type[Task]:
    """The Task class (its class attributes describe it without opening anything)."""
    target = REGISTRY.get(name)
    if target is None:
        raise HarnessError(f"unknown task {name!r} (this harness runs: {', '.join(task_names())})")
    return load(target)


def get_task(name: str) -> Task:
    """A fresh Task instance; HarnessError naming the known tasks if `name` is not one."""
    return task_class(name)()
