"""The nightly matrix file: which tasks and scenarios run on which node groups, validated.

A matrix is YAML (see examples/nightly.yaml). `load_matrix` checks its shape (pydantic) and
that every name in it means something (tasks and scenarios from the v3.1 rules table, an
inventory that exists); `expand` then checks it against the inventory's nodes (groups and
hosts exist, each scenario is allowed in the category of every node it lands on) and turns
it into the per-node RunSpec lists the orchestrator runs. Every problem is one ConfigError
line that names the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from fleet.config import PROFILES, SYNTHETIC_VARIANTS, RunSettings, validate
from fleet.errors import ConfigError, PlanError
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import RunSpec
from fleet.inventory import Inventory, Node
from fleet.plan import node_specs
from fleet.regress import (
    DEFAULT_BASELINE_RUNS,
    DEFAULT_MIN_RUNS,
    DEFAULT_THRESHOLD,
    MIN_MIN_RUNS,
    Policy,
    parse_threshold,
)

REQUIRED = "required"
# Measured performance runs a night after each job's own: three confirm a 10 % step at 2 %
# run-to-run CV on its second night where one does not (benchmarks/nightly_verdicts.py).
DEFAULT_REPEATS = 3


def _known(kind: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r} (choose from {', '.join(choices)})")
    return value


def _scenarios(value: Any) -> Any:
    if value == REQUIRED:
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be {REQUIRED!r} or a non-empty list of scenarios")
    return [_known("scenario", s, rules.SCENARIOS) for s in value]


Scenarios = Annotated[Literal["required"] | list[str], BeforeValidator(_scenarios)]
Modes = Annotated[list[str], AfterValidator(lambda v: [_known("mode", m, rules.MODES) for m in v])]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegressionSettings(_Strict):
    """`regression:` in the matrix; the threshold is a fraction or a percentage ("5%")."""

    threshold: Annotated[float, BeforeValidator(parse_threshold)] = DEFAULT_THRESHOLD
    baseline_runs: int = Field(DEFAULT_BASELINE_RUNS, ge=MIN_MIN_RUNS)
    min_runs: int = Field(DEFAULT_MIN_RUNS, ge=MIN_MIN_RUNS)

    @model_validator(mode="after")
    def _min_within_window(self) -> RegressionSettings:
        if self.min_runs > self.baseline_runs:
            raise PydanticCustomError(
                "min_runs", "min_runs: {n} is more than baseline_runs ({w}): the baseline could never fill",
                {"n": self.min_runs, "w": self.baseline_runs},
            )
        return self

    @property
    def policy(self) -> Policy:
        return Policy(threshold=self.threshold, baseline_runs=self.baseline_runs, min_runs=self.min_runs)


class TaskOverride(_Strict):
    """What one task does differently from the matrix defaults."""

    scenarios: Scenarios | None = None
    modes: Modes | None = None
    groups: list[str] | None = None
    hosts: list[str] | None = None


class Matrix(_Strict):
    """A validated matrix file; relative paths are already resolved against its folder."""

    inventory: Path
    tasks: list[str] = Field(min_length=1)
    scenarios: Scenarios = REQUIRED
    modes: Modes = Field(default_factory=list)  # empty: the profile's defaults
    profile: str = "smoke"
    groups: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)  # neither groups nor hosts: every node
    overrides: dict[str, TaskOverride] = Field(default_factory=dict)
    submitter: str = "MLPerfFleet"
    artifacts: Path | None = None  # official models and datasets; none: synthetic assets
    synthetic: bool = False  # synthetic assets even when artifacts is set
    synthetic_variant: str = "full"  # small: same inputs and outputs, far fewer channels
    synthetic_samples: int | None = Field(None, gt=0)
    runs_dir: Path | None = None
    repeats: int = Field(DEFAULT_REPEATS, ge=0, le=20)
    # Nodes on the same CPUs (fleet/sharing.py): benchmark them one at a time, or together
    # with their results marked as measured while sharing.
    shared_hardware: Literal["one-at-a-time", "together"] = "one-at-a-time"
    regression: RegressionSettings = Field(default_factory=RegressionSettings)

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_known("task", t, tuple(rules.TASK_TO_MODEL)) for t in value))

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        return _known("profile", value, PROFILES)

    @field_validator("synthetic_variant")
    @classmethod
    def _variant(cls, value: str) -> str:
        return _known("synthetic variant", value, SYNTHETIC_VARIANTS)

    @field_validator("inventory", "artifacts", "runs_dir", mode="after")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = Path((info.context or {}).get("base", "."))
        path = (base / value.expanduser()).resolve()
        if info.field_name == "inventory" and not path.exists():
            raise ValueError(f"{path} does not exist")
        return path

    @field_validator("overrides")
    @classmethod
    def _override_keys(cls, value: dict[str, TaskOverride], info: ValidationInfo) -> dict[str, TaskOverride]:
        tasks = info.data.get("tasks") or []
        for task in value:
            _known("task", task, tuple(rules.TASK_TO_MODEL))
            if task not in tasks:
                raise ValueError(f"{task!r} is not in tasks ({', '.join(tasks)})")
        return value

    def run_settings(self) -> RunSettings:
        """Settings of the sweep as a whole (every task; scenarios and modes live in the specs)."""
        return replace(self.settings(self.tasks[0]), tasks=list(self.tasks), scenarios=[], modes=[])

    def settings(self, task: str) -> RunSettings:
        """The `fleet run` settings this matrix means for one task."""
        override = self.overrides.get(task) or TaskOverride()
        scenarios = override.scenarios if override.scenarios is not None else self.scenarios
        return RunSettings(
            inventory=str(self.inventory),
            tasks=[task],
            scenarios=[] if scenarios == REQUIRED else list(scenarios),
            modes=list(override.modes if override.modes is not None else self.modes),
            profile=self.profile,
            submitter=self.submitter,
            runs_dir=str(self.runs_dir or "runs"),
            artifacts=str(self.artifacts) if self.artifacts else None,
            synthetic=self.synthetic,
            synthetic_variant=self.synthetic_variant,
            synthetic_samples=self.synthetic_samples,
            repeats=self.repeats,
            shared_hardware=self.shared_hardware,
        )


def load_matrix(path: str | Path) -> Matrix:
    """Read and validate a matrix file; any problem is one ConfigError line naming the key."""
    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"matrix file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read matrix file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a matrix is a YAML mapping (inventory:, tasks:, ...)")
    try:
        return Matrix.model_validate(data, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = ""
    for part in err["loc"]:
        if isinstance(part, int):
            loc += f"[{part}]"
        elif "[" not in part:  # pydantic's union-branch labels such as "list[str]"
            loc += f".{part}" if loc else part
    if err["type"] == "missing":
        text = f"{loc} is required"
    elif err["type"] == "extra_forbidden":
        text = f"{loc} is not a matrix key"
    else:
        text = f"{loc}: " + re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    more = len(errors) - 1
    return text + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def expand(
    matrix: Matrix,
    inventory: Inventory,
    members: Mapping[str, set[str]],
    run_id: str = "",
    where: str = "matrix",
) -> dict[str, list[RunSpec]]:
    """host -> its RunSpecs, in matrix task order; `members` maps inventory groups to hosts.

    `where` (the matrix file name) starts every error line.
    """
    specs: dict[str, list[RunSpec]] = {}
    for task in matrix.tasks:
        override = matrix.overrides.get(task) or TaskOverride()
        key = f"overrides.{task}" if override.groups is not None or override.hosts is not None else ""
        groups = override.groups if override.groups is not None else matrix.groups
        hosts = override.hosts if override.hosts is not None else matrix.hosts
        nodes = _select(inventory, members, groups, hosts, f"{where}: {key + '.' if key else ''}")
        try:
            settings = validate(matrix.settings(task))  # the same checks as `fleet run` options
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        scen_key = f"overrides.{task}.scenarios" if override.scenarios is not None else "scenarios"
        for node in nodes:
            try:
                task_specs = node_specs(node, settings, run_id)
            except PlanError as exc:
                allowed = rules.model_for_task(task).scenarios_for(node.category)
                bad_key = scen_key if allowed else (f"{key}.groups" if key else "tasks")
                raise ConfigError(f"{where}: {bad_key}{_via(node, groups, members)}: {exc}") from None
            specs.setdefault(node.name, []).extend(task_specs)
    return specs


def _select(
    inventory: Inventory, members: Mapping[str, set[str]], groups: list[str], hosts: list[str], where: str
) -> list[Node]:
    if not groups and not hosts:
        return list(inventory)
    names = {n.name for n in inventory}
    wanted: set[str] = set()
    for group in groups:
        if group not in members:
            known = ", ".join(sorted(g for g in members if g not in ("all", "ungrouped")))
            raise ConfigError(f"{where}groups: no group {group!r} in inventory {inventory.path} ({known})")
        wanted |= members[group] & names
    for host in hosts:
        if host not in names:
            raise ConfigError(f"{where}hosts: no host {host!r} in inventory {inventory.path}")
        wanted.add(host)
    return [n for n in inventory if n.name in wanted]


def _via(node: Node, groups: list[str], members: Mapping[str, set[str]]) -> str:
    hit = [g for g in groups if node.name in members.get(g, set())]
    return f" (group {hit[0]})" if hit else ""


def group_members(inventory_path: Path) -> dict[str, set[str]]:
    """Inventory group -> hosts, as ansible itself resolves children groups."""
    from fleet.inventory import _ansible_hosts

    members: dict[str, set[str]] = {}
    for name, groups, _ in _ansible_hosts(Path(inventory_path)):
        for group in groups:
            members.setdefault(group, set()).add(name)
    return members
