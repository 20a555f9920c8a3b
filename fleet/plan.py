"""(nodes x tasks x scenarios x modes) -> per-node RunSpec lists and jobs. Pure: no I/O.

A node's category decides its scenarios (rules.required_scenarios); asking for a task or
scenario the category does not allow is refused here, before anything runs. A *job* is one
harness invocation: one task and one scenario on one node, all its modes in order. Jobs are
what run.json records and what `--resume` redoes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from fleet.config import RunSettings
from fleet.errors import PlanError
from fleet.harness.backends import model_problem
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import RunSpec, Tuning
from fleet.inventory import Node

EXECUTION_PROVIDERS = {"cpu": "cpu", "cuda": "cuda", "tensorrt": "tensorrt"}


@dataclass(frozen=True)
class Job:
    host: str
    task: str
    scenario: str
    modes: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.host}/{self.task}/{self.scenario}"

    @property
    def slug(self) -> str:
        """File-name form of the id without the host (unique on one node)."""
        return f"{self.task}-{self.scenario}"


def scenarios_for(node: Node, task: str, wanted: Iterable[str] = ()) -> list[str]:
    """The scenarios `task` runs on `node`: required ones, or the `wanted` subset of them."""
    model = rules.model_for_task(task)
    allowed = model.scenarios_for(node.category)
    if not allowed:
        others = [c for c in rules.CATEGORIES if model.scenarios_for(c)]
        raise PlanError(
            f"{task} cannot run on {node.category} host {node.name}: in MLPerf Inference {rules.ROUND} "
            f"it is a benchmark for {', '.join(others)} systems only"
        )
    wanted = list(wanted)
    if not wanted:
        return list(allowed)
    bad = [s for s in wanted if s not in allowed]
    if bad:
        raise PlanError(
            f"scenario {', '.join(bad)} is not allowed for {task} on {node.category} host {node.name}; "
            f"{node.category} runs {', '.join(allowed)}"
        )
    return [s for s in allowed if s in wanted]


def backend_for(node: Node, task: str) -> str:
    """The host's fleet_backend, or the task's reference backend; refused if it has no model."""
    from fleet.harness.errors import HarnessError
    from fleet.harness.tasks import task_class

    try:
        backends = task_class(task).model_backends
    except HarnessError as exc:
        raise PlanError(str(exc)) from None
    if not node.backend:
        return backends[0]
    problem = model_problem(task, backends, node.backend)
    if problem:
        raise PlanError(f"host {node.name} (fleet_backend={node.backend}): {problem} "
                        f"(set fleet_backend in the inventory, or leave it out for the task's own)")
    return node.backend


def node_specs(node: Node, settings: RunSettings, run_id: str = "") -> list[RunSpec]:
    """One RunSpec per task for `node` (asset paths are filled in on the node's side later)."""
    specs = []
    for task in settings.tasks:
        specs.append(
            RunSpec(
                task=task,
                scenarios=scenarios_for(node, task, settings.scenarios),
                modes=settings.modes_for(task),
                profile=settings.profile,
                backend=backend_for(node, task),
                synthetic=settings.uses_synthetic,
                tuning=Tuning(
                    **{
                        "threads": node.threads,
                        "batch_size": node.batch_size,
                        "execution_provider": EXECUTION_PROVIDERS[node.accelerator],
                        **node.tuning,  # fleet_tuning wins over the shorthand variables
                    }
                ),
                system_name=node.system_name,
                category=node.category,
                run_id=run_id,
            )
        )
    return specs


def build(nodes: Iterable[Node], settings: RunSettings, run_id: str = "") -> dict[str, list[RunSpec]]:
    """host -> its RunSpecs; raises PlanError on the first rule violation."""
    return {node.name: node_specs(node, settings, run_id) for node in nodes}


def jobs_of(specs: Mapping[str, list[RunSpec]]) -> list[Job]:
    """Every job, node by node in the order the node runs them."""
    return [
        Job(host, spec.task, scen, tuple(spec.modes))
        for host, host_specs in specs.items()
        for spec in host_specs
        for scen in spec.scenarios
    ]


def job_spec(spec: RunSpec, scenario: str, model: str, dataset: str) -> RunSpec:
    """The single-scenario spec one job sends to its node."""
    return replace(spec, scenarios=[scenario], model=model, dataset=dataset)
