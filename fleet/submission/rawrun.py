"""Read `runs/<run>/raw/<host>/` (manifest.json + node.json) into plain records.

Shared by the assembler and the reports; the logs themselves are read with fleet.logparse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.errors import SubmissionError
from fleet.harness.jsonfile import read_json
from fleet.harness.rules import v3_1 as rules

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A system name usable as a directory and file name in the tree (no spaces, no dot first)."""
    cleaned = _UNSAFE.sub("_", name.strip()).strip("._-")
    return re.sub(r"_+", "_", cleaned)


@dataclass
class RawHost:
    """One collected node: where its logs are, what it is called, what it ran."""

    name: str  # the raw/ directory name (inventory hostname: private)
    path: Path
    manifest: dict[str, Any]
    node: dict[str, Any]
    system_name: str
    category: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def host_facts(self) -> dict[str, Any]:
        return self.manifest.get("host") or {}

    @property
    def versions(self) -> dict[str, Any]:
        return self.manifest.get("versions") or {}

    def run_path(self, run: dict[str, Any]) -> Path:
        return self.path / run["dir"]

    def tasks(self) -> list[str]:
        return sorted({r["task"] for r in self.runs})


def _read_json(path: Path, what: str) -> dict[str, Any]:
    data = read_json(path, SubmissionError, missing="{path} is missing: {what}",
                     invalid="{path} is not valid JSON ({exc}); collect the node again", what=what)
    if not isinstance(data, dict):
        raise SubmissionError(f"{path} must hold a JSON object")
    return data


def load_host(path: Path) -> RawHost:
    manifest = _read_json(path / "manifest.json", "the node's harness writes it; rerun the node")
    if manifest.get("round", rules.ROUND) != rules.ROUND:
        raise SubmissionError(
            f"{path / 'manifest.json'} is for round {manifest.get('round')}, not {rules.ROUND}"
        )
    node = _read_json(path / "node.json", "fleet collect writes it; rerun `fleet collect` for this run")
    raw_name = str(node.get("system_name") or node.get("inventory_hostname") or path.name)
    system_name = safe_name(raw_name)
    if not system_name:
        raise SubmissionError(f"host {path.name}: system name {raw_name!r} has no usable characters")
    category = str(node.get("category") or "")
    if category not in rules.CATEGORIES:
        raise SubmissionError(
            f"host {path.name}: category {category!r} must be one of {', '.join(rules.CATEGORIES)} "
            "(set it in the inventory)"
        )
    runs = [
        r for r in manifest.get("runs") or []
        if isinstance(r, dict) and r.get("task") in rules.TASK_TO_MODEL and not r.get("repeat")
    ]  # a nightly's measured repeats are trend data; the job's own runs are its submission
    return RawHost(path.name, path, manifest, node, system_name, category, runs)


def load_hosts(run_dir: Path) -> list[RawHost]:
    """Every host under raw/ with a manifest, in name order; system names must be unique."""
    raw = Path(run_dir) / "raw"
    hosts = [load_host(p) for p in sorted(raw.iterdir()) if p.is_dir()] if raw.is_dir() else []
    if not hosts:
        raise SubmissionError(f"{raw} holds no collected hosts; run `fleet run` or `fleet collect` first")
    seen: dict[str, str] = {}
    for host in hosts:
        key = host.system_name.lower()
        if key in seen:
            raise SubmissionError(
                f"hosts {seen[key]} and {host.name} both get system name {host.system_name!r}; "
                "give each a distinct system_name in the inventory"
            )
        seen[key] = host.name
    return hosts
