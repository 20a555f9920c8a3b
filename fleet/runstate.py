"""run.json: the plan and every job's outcome, rewritten atomically as the run goes.

It is the resume point: `fleet run --resume` reloads it and redoes only jobs whose status is
not `ok`. Nodes carry what the controller learnt about them (facts, resolved work dir).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fleet.errors import RunStateError
from fleet.harness.jsonfile import from_known_fields, read_json

RUNSTATE_VERSION = 1
PENDING, RUNNING, OK, FAILED = "pending", "running", "ok", "failed"
# The node cannot make the scenario VALID (the harness said so before running it); a resume
# tries it again, since the node or its tuning may have changed.
INFEASIBLE = "infeasible"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class JobState:
    id: str
    host: str
    task: str
    scenario: str
    modes: list[str]
    status: str = PENDING
    stage: str = ""  # the stage that failed it (provision, deploy, assets, bench, collect)
    error: str | None = None
    validity: str | None = None  # performance run's result_validity
    result: float | None = None
    result_unit: str | None = None
    accuracy: float | None = None
    verify: dict[str, str] = field(default_factory=dict)  # TESTxx -> TEST PASS / TEST FAIL
    duration_s: float | None = None
    attempts: int = 0
    started: str | None = None
    finished: str | None = None
    repeat: int = 0  # k >= 1: the k-th measured repeat of a job's performance run (plan.Job)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobState:
        return from_known_fields(cls, data)


@dataclass
class NodeState:
    name: str
    category: str
    system_name: str
    stage: str = ""  # last stage reached
    error: str | None = None
    workdir: str | None = None  # absolute, as resolved on the node
    facts: dict[str, Any] = field(default_factory=dict)
    shares_with: list[str] = field(default_factory=list)  # nodes on the same CPUs (sharing.py)
    benched_with: list[str] = field(default_factory=list)  # of those, the ones benchmarking beside it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeState:
        return from_known_fields(cls, data)


@dataclass
class RunState:
    run_id: str
    settings: dict[str, Any]
    specs: dict[str, list[dict[str, Any]]]  # host -> RunSpec dicts
    jobs: dict[str, JobState]
    nodes: dict[str, NodeState]
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # one entry per fleet run/resume
    version: int = RUNSTATE_VERSION
    path: Path | None = field(default=None, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def failed(self) -> list[JobState]:
        return [j for j in self.jobs.values() if j.status != OK]

    def jobs_of(self, host: str) -> list[JobState]:
        return [j for j in self.jobs.values() if j.host == host]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "run_id": self.run_id,
            "created": self.created,
            "updated": self.updated,
            "settings": self.settings,
            "specs": self.specs,
            "nodes": {k: asdict(v) for k, v in self.nodes.items()},
            "jobs": {k: asdict(v) for k, v in self.jobs.items()},
            "attempts": self.attempts,
        }

    def save(self, path: Path | None = None) -> Path:
        """Atomic write (temp file + rename) so a killed controller never leaves half a file."""
        target = Path(path or self.path or "run.json")
        with self._lock:
            self.updated = now()
            data = json.dumps(self.to_dict(), indent=2, sort_keys=False)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".run.json.")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data + "\n")
            os.replace(tmp, target)
        self.path = target
        return target

    @classmethod
    def load(cls, path: Path) -> RunState:
        data = read_json(path, RunStateError, missing="{path} does not exist: not a fleet run directory",
                         invalid="{path} is corrupt ({exc}); cannot resume")
        if not isinstance(data, dict):
            raise RunStateError(f"{path} is corrupt (not a JSON object); cannot resume")
        if data.get("version") != RUNSTATE_VERSION:
            found = data.get("version")
            raise RunStateError(f"{path} has run.json version {found}; expected {RUNSTATE_VERSION}")
        try:
            return cls(
                run_id=data["run_id"],
                settings=data["settings"],
                specs=data["specs"],
                jobs={k: JobState.from_dict(v) for k, v in data["jobs"].items()},
                nodes={k: NodeState.from_dict(v) for k, v in data["nodes"].items()},
                created=data.get("created", now()),
                updated=data.get("updated", now()),
                attempts=data.get("attempts", []),
                path=Path(path),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise RunStateError(f"{path} is corrupt (no usable {exc}); cannot resume") from None
