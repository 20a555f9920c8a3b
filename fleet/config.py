"""Command-line options -> validated, serialisable run settings.

The settings are stored in run.json so that `fleet run --resume` redoes a run exactly as it
was asked for, without the user repeating any option.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet.errors import ConfigError
from fleet.harness.jsonfile import from_known_fields
from fleet.harness.rules import v3_1 as rules
from fleet.sharing import SHARED_HARDWARE

PROFILES = ("smoke", "submission")
SYNTHETIC_VARIANTS = ("small", "full")


def default_cache_dir() -> Path:
    """Where wheelhouses live on the controller (shared by all runs)."""
    base = os.environ.get("FLEET_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlperf-fleet"
    )
    return Path(base)


def default_inventory() -> Path:
    """The embedded localhost inventory (in the source tree, or installed beside the package)."""
    from fleet.resources import resource_dir

    return resource_dir("inventory") / "localhost.ini"


@dataclass
class RunSettings:
    """Everything a run was asked to do; stored in run.json."""

    inventory: str
    tasks: list[str]
    scenarios: list[str] = field(default_factory=list)  # empty: the category's required ones
    modes: list[str] = field(default_factory=list)  # empty: the profile's defaults
    profile: str = "smoke"
    submitter: str = "MLPerfFleet"
    runs_dir: str = "runs"
    artifacts: str | None = None
    synthetic: bool = False
    synthetic_variant: str = ""  # empty: small for the smoke profile, full for submission
    synthetic_samples: int | None = None
    limit: list[str] = field(default_factory=list)
    cache_dir: str = ""
    bench_timeout_s: int = 0  # 0: from the profile
    repeats: int = 0  # measured repeats of each performance run after the job (fleet sweep)
    shared_hardware: str = "together"  # nodes on the same CPUs: together | one-at-a-time (sharing.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        return from_known_fields(cls, data)

    @property
    def uses_synthetic(self) -> bool:
        return self.synthetic or not self.artifacts

    def modes_for(self, task: str) -> list[str]:
        """Explicit --modes, else smoke: performance + accuracy; submission: + compliance.

        A compliance test the task does not have in v3.1 (GPT-J has none) is left out
        (plan.compliance_lines says so).
        """
        if self.modes:
            tests = rules.model_for_task(task).compliance_tests
            return [m for m in self.modes if not m.startswith("TEST") or m in tests]
        base = ["performance", "accuracy"]
        if self.profile == "submission":
            base += list(rules.model_for_task(task).compliance_tests)
        return base

    def synthetic_samples_for(self, task: str) -> int | None:
        """Synthetic dataset size of `task`: as asked, else what the profile needs (None: the generator's).

        The submission profile needs the task's performance sample count (rules table), so a
        submission run on synthetic assets is sized for it without being told.
        """
        if self.synthetic_samples is not None:
            return self.synthetic_samples
        if self.profile == "submission":
            return rules.model_for_task(task).performance_sample_count
        return None

    def job_timeout_s(self) -> int:
        """Upper bound for one harness run of one scenario (the async limit on the node)."""
        if self.bench_timeout_s:
            return self.bench_timeout_s
        return 1800 if self.profile == "smoke" else 6 * 3600


def validate(settings: RunSettings) -> RunSettings:
    """Refuse impossible settings before anything runs; normalise the rest."""
    if not settings.tasks:
        raise ConfigError("no --task given")
    for task in settings.tasks:
        if task not in rules.TASK_TO_MODEL:
            raise ConfigError(f"unknown task {task!r}; choose from {', '.join(rules.TASK_TO_MODEL)}")
    for scen in settings.scenarios:
        if scen not in rules.SCENARIOS:
            raise ConfigError(f"unknown scenario {scen!r}; choose from {', '.join(rules.SCENARIOS)}")
    for mode in settings.modes:
        if mode not in rules.MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose from {', '.join(rules.MODES)}")
    if settings.profile not in PROFILES:
        raise ConfigError(f"unknown profile {settings.profile!r}; choose from {', '.join(PROFILES)}")
    if not settings.synthetic_variant:
        settings.synthetic_variant = "small" if settings.profile == "smoke" else "full"
    if settings.synthetic_variant not in SYNTHETIC_VARIANTS:
        raise ConfigError(f"--synthetic-variant must be one of {', '.join(SYNTHETIC_VARIANTS)}")
    if settings.synthetic_samples is not None and settings.synthetic_samples <= 0:
        raise ConfigError("--synthetic-samples must be positive")
    sized = settings.synthetic_samples is not None and settings.uses_synthetic
    if sized and settings.profile == "submission":
        for task in settings.tasks:
            need = rules.model_for_task(task).performance_sample_count
            if settings.synthetic_samples < need:  # type: ignore[operator]
                raise ConfigError(
                    f"--synthetic-samples {settings.synthetic_samples} is below the {need} samples the "
                    f"submission profile needs for {task} (its performance sample count); drop "
                    "--synthetic-samples and fleet sizes each synthetic dataset itself"
                )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", settings.submitter):
        raise ConfigError(f"--submitter {settings.submitter!r}: use letters, digits, '.', '_' or '-'")
    if settings.artifacts and not settings.synthetic:
        art = Path(settings.artifacts).expanduser()
        if not art.is_dir():
            raise ConfigError(f"--artifacts {art} is not a directory")
        settings.artifacts = str(art.resolve())
    if settings.shared_hardware not in SHARED_HARDWARE:
        raise ConfigError(f"shared_hardware {settings.shared_hardware!r}: choose from "
                          f"{', '.join(SHARED_HARDWARE)}")
    settings.scenarios = _dedup(settings.scenarios)
    settings.modes = _dedup(settings.modes)
    settings.tasks = _dedup(settings.tasks)
    settings.inventory = str(Path(settings.inventory).expanduser().resolve())
    settings.runs_dir = str(Path(settings.runs_dir).expanduser().resolve())
    settings.cache_dir = (
        str(Path(settings.cache_dir).expanduser().resolve())
        if settings.cache_dir
        else str(default_cache_dir())
    )
    return settings


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
