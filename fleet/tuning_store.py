"""Tuning kept per system, and used by `fleet run --tuned`.

    runs/tuning/<system_name>/<task>.json    (store_version 1)
    {"store_version": 1, "system_name": "...", "inventory_hostname": "...", "task": "resnet50",
     "facts_digest": "...", "facts": {...}, "scenarios": {"Offline": {<node record>}, ...}}

A node record is what `python -m fleet.harness tune` wrote into its OUT/tuning.json (chosen
settings, the RunSpec.tuning values, every trial). `store_run` files the records of a
`fleet tune` run (a resume: only the jobs it tuned again); scenarios tuned again replace
theirs, the others are kept only while the node's host-facts digest is unchanged.
`apply_stored` turns a `fleet run` plan into one spec per scenario carrying the stored
values plus the digest they belong to, so a node whose machine changed since drops them
itself (harness/tuning/guard.py); `after_tuned_run` then compares the digests the nodes
reported and warns for each changed one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fleet.harness.errors import one_line
from fleet.harness.jsonfile import write_json
from fleet.harness.spec import RunSpec, Tuning
from fleet.harness.tuning.digest import changed_fields, digest_fields, facts_digest
from fleet.inventory import Inventory
from fleet.runstate import OK, RunState

STORE_VERSION = 1
APPLIED_FILE = "tuning.json"  # in a run directory: what a run applied (or a tune run stored)
_TUNABLE = {f.name for f in fields(Tuning)} - {"tuned_for", "tuned_fields"}

Warn = Callable[[str], None]


def store_root(runs_dir: str | Path) -> Path:
    return Path(runs_dir) / "tuning"


def record_path(root: Path, system_name: str, task: str) -> Path:
    return Path(root) / system_name / f"{task}.json"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data, default=str)


def load(root: Path, system_name: str, task: str) -> dict[str, Any] | None:
    data = _read(record_path(root, system_name, task))
    if not data or data.get("store_version") != STORE_VERSION:
        return None
    return data


@dataclass
class Stored:
    """What a `fleet tune` run filed: paths written, (host, task, scenario) tuned, warnings."""

    paths: list[Path] = field(default_factory=list)
    tuned: list[tuple[str, str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str, str]] = field(default_factory=list)  # + why


def store_run(run_dir: Path, state: RunState, inventory: Inventory, root: Path,
              jobs: Collection[str] | None = None) -> Stored:
    """File each node's tuning from raw/<host>/tuning.json under root/<system>/<task>.json.

    `jobs`: only these job ids (a resumed run files what it tuned again and leaves the files of
    the nodes that had succeeded untouched; another tune run may have replaced them since).
    """
    out = Stored()
    for host in state.nodes:
        mine = [job for job in state.jobs_of(host) if jobs is None or job.id in jobs]
        if not mine:
            continue
        node = inventory.node(host)
        data = _read(Path(run_dir) / "raw" / host / "tuning.json") or {}
        digest = data.get("facts_digest")
        tasks: dict[str, dict[str, Any]] = {}
        for job in mine:
            rec = ((data.get("tasks") or {}).get(job.task) or {}).get(job.scenario)
            if job.status == OK and rec and rec.get("status") == "ok" and digest:
                tasks.setdefault(job.task, {})[job.scenario] = rec
                out.tuned.append((host, job.task, job.scenario))
            else:
                why = (rec or {}).get("error") or job.error or "no tuning result"
                out.failed.append((host, job.task, job.scenario, one_line(why, 300)))
        for task, scenarios in tasks.items():
            path = record_path(root, node.system_name, task)
            old = load(root, node.system_name, task)
            kept = dict(old["scenarios"]) if old and old.get("facts_digest") == digest else {}
            _write(path, {
                "store_version": STORE_VERSION, "system_name": node.system_name, "inventory_hostname": host,
                "task": task, "facts_digest": digest, "facts": data.get("facts"),
                "run_id": state.run_id, "scenarios": {**kept, **scenarios},
            })
            out.paths.append(path)
    return out


@dataclass
class Applied:
    """What `apply_stored` put into a run: host -> task -> the stored record used."""

    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.records)

    def as_dict(self) -> dict[str, Any]:
        return {"store_version": STORE_VERSION, "hosts": self.records}


# Backend knobs the inventory may pin (fleet_threads, fleet_batch_size, fleet_tuning); the
# tuner kept them fixed, so a stored value differs only if the inventory changed since: the
# inventory wins. LoadGen targets from fleet_tuning are what `--tuned` replaces.
PINNABLE = ("threads", "batch_size", "graph_optimization", "server_max_batch", "server_batch_timeout_ms")


def _tuned(spec: RunSpec, values: Mapping[str, Any], digest: str) -> Tuning:
    """spec.tuning with the stored values, except the knobs the inventory pins."""
    pinned = {name for name in PINNABLE if getattr(spec.tuning, name) is not None}
    if "batch_size" in pinned:
        pinned.add("server_max_batch")
    use = {k: v for k, v in values.items() if k in _TUNABLE and k not in pinned}
    return replace(spec.tuning, **use, tuned_for=digest, tuned_fields=sorted(use))


def apply_stored(specs: Mapping[str, list[RunSpec]], inventory: Inventory, root: Path, profile: str,
                 warn: Warn) -> tuple[dict[str, list[RunSpec]], Applied]:
    """The plan with stored tuning: one spec per scenario; defaults (and a warning) where none."""
    result: dict[str, list[RunSpec]] = {}
    applied = Applied()
    for host, host_specs in specs.items():
        node = inventory.node(host)
        result[host] = []
        for spec in host_specs:
            stored = load(root, node.system_name, spec.task)
            if stored is None:
                where = record_path(root, node.system_name, spec.task)
                warn(f"{host}: no stored tuning for {spec.task} ({where}); it runs with defaults "
                     f"(fleet tune -i ... -t {spec.task} first)")
                result[host].append(spec)
                continue
            used: dict[str, Any] = {}
            for scenario in spec.scenarios:
                rec = (stored.get("scenarios") or {}).get(scenario)
                if not rec or rec.get("status") != "ok" or not rec.get("tuning"):
                    warn(f"{host}: no stored {spec.task} {scenario} tuning; that scenario runs with defaults")
                    result[host].append(replace(spec, scenarios=[scenario]))
                    continue
                if rec.get("profile") and rec["profile"] != profile:
                    warn(f"{host}: {spec.task} {scenario} was tuned for the {rec['profile']} profile; "
                         f"its LoadGen expectations carry that profile's headroom")
                tuning = _tuned(spec, rec["tuning"], str(stored.get("facts_digest")))
                result[host].append(replace(spec, scenarios=[scenario], tuning=tuning))
                used[scenario] = rec
            if used:
                applied.records.setdefault(host, {})[spec.task] = {
                    **{k: v for k, v in stored.items() if k != "scenarios"}, "scenarios": used}
    return result, applied


def after_tuned_run(run_dir: Path, applied: Applied, warn: Warn) -> None:
    """Keep what was applied (run_dir/tuning.json) and warn for nodes whose facts changed."""
    _write(Path(run_dir) / APPLIED_FILE, applied.as_dict())
    for host, tasks in applied.records.items():
        manifest = _read(Path(run_dir) / "raw" / host / "manifest.json")
        if not manifest:
            continue
        host_facts, versions = manifest.get("host") or {}, manifest.get("versions") or {}
        here = facts_digest(host_facts, versions)
        for task, stored in tasks.items():
            if stored.get("facts_digest") != here:
                diff = changed_fields(stored.get("facts") or {}, digest_fields(host_facts, versions))
                warn(f"{host}: host facts changed since {task} was tuned ({'; '.join(diff) or 'digest'}); "
                     f"the node ran with defaults. Rerun fleet tune.")


def write_tune_summary(run_dir: Path, state: RunState, inventory: Inventory) -> Applied:
    """A tune run's own run_dir/tuning.json in the applied format, so reports read both alike."""
    applied = Applied()
    for host in state.nodes:
        data = _read(Path(run_dir) / "raw" / host / "tuning.json") or {}
        for task, scenarios in (data.get("tasks") or {}).items():
            applied.records.setdefault(host, {})[task] = {
                "store_version": STORE_VERSION, "system_name": inventory.node(host).system_name,
                "inventory_hostname": host, "task": task, "facts_digest": data.get("facts_digest"),
                "facts": data.get("facts"), "run_id": state.run_id, "scenarios": scenarios,
            }
    _write(Path(run_dir) / APPLIED_FILE, applied.as_dict())
    return applied
