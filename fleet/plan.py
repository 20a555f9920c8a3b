"""(nodes x tasks x scenarios x modes) -> per-node RunSpec lists and jobs. Pure: no I/O.

A node's category decides its scenarios (rules.required_scenarios); asking for a scenario the
category does not allow is refused here, before anything runs. A task the category does not
run at all (DLRM-v2 and BERT-99.9 are datacenter-only) skips that node with one line, and is
refused only when no node of the run can run it. A *job* is one
harness invocation: one task and one scenario on one node, all its modes in order. Jobs are
what run.json records and what `--resume` redoes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    repeat: int = 0  # k >= 1: the k-th measured repeat of the job's performance run

    @property
    def id(self) -> str:
        return f"{self.host}/{self.task}/{self.scenario}" + (f"/repeat{self.repeat}" if self.repeat else "")

    @property
    def slug(self) -> str:
        """File-name form of the id without the host (unique on one node)."""
        return f"{self.task}-{self.scenario}" + (f"-repeat{self.repeat}" if self.repeat else "")


def scenarios_for(node: Node, task: str, wanted: Iterable[str] = ()) -> list[str]:
    """The scenarios `task` runs on `node`: required ones, or the `wanted` subset of them."""
    allowed = rules.model_for_task(task).scenarios_for(node.category)
    if not allowed:
        raise PlanError(f"{task} cannot run on {node.category} host {node.name}: {_categories_of(task)}")
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


def _categories_of(task: str) -> str:
    model = rules.model_for_task(task)
    others = [c for c in rules.CATEGORIES if model.scenarios_for(c)]
    return f"in MLPerf Inference {rules.ROUND} it is a benchmark for {', '.join(others)} systems only"


def category_skips(node: Node, task: str) -> str | None:
    """Why `node` runs no scenario of `task` (one line), or None when its category runs the task."""
    if rules.model_for_task(task).scenarios_for(node.category):
        return None
    return f"{task} skips {node.category} host {node.name}: {_categories_of(task)}"


def compliance_lines(settings: RunSettings) -> list[str]:
    """One line per task whose compliance tests this run would ask for but v3.1 does not have."""
    asked = [m for m in settings.modes if m.startswith("TEST")]
    if not asked and (settings.modes or settings.profile != "submission"):
        return []  # no audits in this run (the submission profile asks for each task's own)
    lines = []
    for task in settings.tasks:
        tests = rules.model_for_task(task).compliance_tests
        dropped = [m for m in asked if m not in tests]
        if not tests:
            lines.append(f"{task} has no compliance tests in MLPerf Inference {rules.ROUND}: no audit runs, "
                         f"and its results need no compliance directory")
        elif dropped:
            lines.append(f"{task} has no {', '.join(dropped)} in MLPerf Inference {rules.ROUND} (its audits: "
                         f"{', '.join(tests)}): those modes are left out for it")
    return lines


def node_specs(node: Node, settings: RunSettings, run_id: str = "",
               skip: Callable[[str], None] | None = None) -> list[RunSpec]:
    """One RunSpec per task for `node` (asset paths are filled in on the node's side later).

    With `skip`, a task the node's category does not run is left out and `skip` gets the line
    that says why; without it, such a task is a PlanError (an explicit choice, e.g. a matrix).
    """
    specs = []
    for task in settings.tasks:
        why = category_skips(node, task) if skip is not None else None
        if why:
            skip(why)
            continue
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


def build(nodes: Iterable[Node], settings: RunSettings, run_id: str = "",
          skip: Callable[[str], None] | None = None) -> dict[str, list[RunSpec]]:
    """host -> its RunSpecs; raises PlanError on the first rule violation.

    With `skip`, nodes whose category runs none of a task are skipped for it (`skip` gets each
    line) and a node left with no task is not part of the run; a task no node runs is refused.
    """
    nodes = list(nodes)
    specs = {node.name: node_specs(node, settings, run_id, skip) for node in nodes}
    for task in settings.tasks:
        if not any(spec.task == task for host_specs in specs.values() for spec in host_specs):
            hosts = ", ".join(f"{n.name} ({n.category})" for n in nodes)
            raise PlanError(f"{task} runs on no host of this run ({hosts}): {_categories_of(task)}; "
                            f"add such a host to the inventory or --limit")
    return {host: host_specs for host, host_specs in specs.items() if host_specs}


def jobs_of(specs: Mapping[str, list[RunSpec]], repeats: int = 0) -> list[Job]:
    """Every job, node by node in the order the node runs them.

    With `repeats`, each node first runs its jobs as asked (their performance runs warm the
    node and feed the submission tree), then `repeats` rounds of a performance run of each
    of those jobs, interleaved (round 1 of every job, then round 2, ...), so a disturbance
    at one hour of the night spreads over every series instead of landing on one.
    """
    jobs = []
    for host, host_specs in specs.items():
        own = [Job(host, s.task, scen, tuple(s.modes)) for s in host_specs for scen in s.scenarios]
        jobs.extend(own)
        measured = [job for job in own if "performance" in job.modes]
        for k in range(1, repeats + 1):
            jobs.extend(Job(job.host, job.task, job.scenario, ("performance",), k) for job in measured)
    return jobs


def job_spec(spec: RunSpec, job: Job, model: str, dataset: str) -> RunSpec:
    """The spec one job sends to its node: its scenario and modes (a repeat's: performance only)."""
    return replace(spec, scenarios=[job.scenario], modes=list(job.modes), repeat=job.repeat, model=model,
                   dataset=dataset)
