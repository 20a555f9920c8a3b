"""Turn a run directory (`runs/<run>/raw/<host>/manifest.json` + `node.json`) into history rows.

Reads only the contract files (docs/contracts.md), so any `fleet run` or sweep can be ingested,
today's or last year's. Jobs the controller records as failed in run.json are passed in as
`failed`: an entry the node wrote as ok is marked failed (run.json has the last word on a
job), and a job that left no entry at all (a node that never came up, a harness that died)
becomes a `missing` row, so the history records that it broke instead of thinning the series.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fleet.harness.rules.v3_1 import TASK_TO_MODEL, model_for_task
from fleet.history.store import HistoryError, ResultRow, RunRecord
from fleet.logparse import parse_detail

SWEEP_RECORD = "sweep.json"  # written by fleet.sweep: matrix, regression policy, every job


@dataclass(frozen=True)
class FailedJob:
    """A (host, task, scenario, mode) whose job the controller recorded as failed, and why."""

    host: str
    task: str
    scenario: str
    mode: str
    error: str
    system: str | None = None  # from the plan, for a node that never wrote node.json
    category: str | None = None


def iso_utc(value: str | datetime) -> str:
    """One timestamp spelling for the whole store, so text comparison orders by time."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def accuracy_target(task: str) -> float | None:
    """The first accuracy metric's v3.1 threshold, the one the manifest's `accuracy` reports."""
    if task not in TASK_TO_MODEL:
        return None
    return model_for_task(task).accuracy[0].threshold


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise HistoryError(f"{path} is not a JSON object")
    return data


@dataclass(frozen=True)
class _Host:
    host: str
    system: str
    category: str | None
    facts: str
    facts_digest: str
    versions: str
    versions_digest: str
    shared_with: str | None = None


def _host_context(host_dir: Path, manifest: dict[str, Any], job: FailedJob | None = None) -> _Host:
    node = _read_json(host_dir / "node.json")
    facts = manifest.get("host") or node.get("facts") or {}
    versions = manifest.get("versions") or {}
    host = node.get("inventory_hostname") or host_dir.name
    return _Host(
        host=host,
        system=node.get("system_name") or (job and job.system) or host,
        category=node.get("category") or (job and job.category),
        facts=json.dumps(facts, sort_keys=True),
        facts_digest=digest(facts),
        versions=json.dumps(versions, sort_keys=True),
        versions_digest=digest(versions),
        shared_with=", ".join(node.get("benched_with") or []) or None,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _entry_row(run_id: str, ctx: _Host, entry: dict[str, Any], latencies: dict[str, float]) -> ResultRow:
    try:
        task, scenario, mode = entry["task"], entry["scenario"], entry["mode"]
        started = iso_utc(entry["started"])
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryError(f"manifest entry of {ctx.host} lacks task/scenario/mode/started: {exc}") from None
    return ResultRow(
        run_id=run_id,
        time=started,
        host=ctx.host,
        system=ctx.system,
        category=ctx.category,
        host_digest=ctx.facts_digest,
        host_facts=ctx.facts,
        task=task,
        scenario=scenario,
        mode=mode,
        profile=entry.get("profile"),
        backend=entry.get("backend"),
        execution_provider=entry.get("execution_provider"),
        outcome=entry.get("outcome") or "failed",
        error=entry.get("error"),
        metric=entry.get("result_unit"),
        value=_float(entry.get("result")),
        validity=entry.get("result_validity"),
        accuracy=_float(entry.get("accuracy")),
        accuracy_target=accuracy_target(task),
        verify=entry.get("verify"),
        lat_mean_ms=latencies.get("mean"),
        lat_p50_ms=latencies.get("p50"),
        lat_p90_ms=latencies.get("p90"),
        lat_p95_ms=latencies.get("p95"),
        lat_p97_ms=latencies.get("p97"),
        lat_p99_ms=latencies.get("p99"),
        lat_p999_ms=latencies.get("p99.9"),
        versions=ctx.versions,
        versions_digest=ctx.versions_digest,
        synthetic=bool(entry.get("synthetic")),
        duration_s=_float(entry.get("duration_s")),
        shared_with=ctx.shared_with,
    )


def _missing_row(run_id: str, ctx: _Host, job: FailedJob, when: str) -> ResultRow:
    return ResultRow(
        run_id=run_id, time=when, host=ctx.host, system=ctx.system, category=ctx.category,
        host_digest=ctx.facts_digest, host_facts=ctx.facts, task=job.task, scenario=job.scenario,
        mode=job.mode, profile=None, backend=None, execution_provider=None, outcome="missing",
        error=job.error, metric=None, value=None, validity=None, accuracy=None,
        accuracy_target=accuracy_target(job.task), verify=None, lat_mean_ms=None, lat_p50_ms=None,
        lat_p90_ms=None, lat_p95_ms=None, lat_p97_ms=None, lat_p99_ms=None, lat_p999_ms=None,
        versions=ctx.versions, versions_digest=ctx.versions_digest, synthetic=False, duration_s=None,
    )  # fmt: skip


def read_run(
    run_dir: Path,
    *,
    failed: Iterable[FailedJob] = (),
    now: datetime | None = None,
) -> tuple[RunRecord, list[ResultRow]]:
    """Everything one run directory holds, as a run record and its rows (nothing is written)."""
    run_dir = Path(run_dir)
    raw = run_dir / "raw"
    if not run_dir.is_dir():
        raise HistoryError(f"run directory {run_dir} does not exist")
    run_id = run_dir.name
    rows: list[ResultRow] = []
    contexts: dict[str, _Host] = {}
    host_dirs = sorted(p for p in raw.iterdir() if p.is_dir()) if raw.is_dir() else []
    for host_dir in host_dirs:
        manifest = _read_json(host_dir / "manifest.json")
        ctx = _host_context(host_dir, manifest)
        contexts[ctx.host] = ctx
        entries = [e for e in manifest.get("runs") or [] if isinstance(e, dict)]
        own = [_entry_row(run_id, ctx, e, _latencies(host_dir, e)) for e in entries if not e.get("repeat")]
        rows.extend(_with_repeats(own, [e for e in entries if e.get("repeat")]))
    stamp = iso_utc(now or datetime.now(timezone.utc))
    started = min((r.time for r in rows), default=stamp)
    index = {(r.host, r.task, r.scenario, r.mode): i for i, r in enumerate(rows)}
    for job in failed:
        key = (job.host, job.task, job.scenario, job.mode)
        if key in index:
            row = rows[index[key]]
            if row.outcome == "ok":
                rows[index[key]] = replace(row, outcome="failed", error=job.error)
            continue
        ctx = contexts.get(job.host) or _host_context(raw / job.host, {}, job)
        index[key] = len(rows)
        rows.append(_missing_row(run_id, ctx, job, started))
    sweep = _read_json(run_dir / SWEEP_RECORD)
    policy = sweep.get("regression") or {}
    record = RunRecord(
        run_id=run_id, started=started, ingested=stamp, kind="sweep" if sweep else "run",
        matrix=sweep.get("matrix"), threshold=policy.get("threshold"),
        baseline_runs=policy.get("baseline_runs"), min_runs=policy.get("min_runs"),
    )  # fmt: skip
    return record, rows


def _with_repeats(rows: list[ResultRow], repeats: list[dict[str, Any]]) -> list[ResultRow]:
    """Each performance row with its measured repeats (a sweep's `repeats:`): the VALID results,
    in repeat order, and their run-to-run CV. A repeat that failed or came out INVALID is left
    out, so the night's median rests on fewer runs; the row still says how many it has."""
    found: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for e in repeats:
        ok = e.get("outcome") == "ok" and e.get("result") is not None
        clean = ok and e.get("result_validity") == "VALID"
        if e.get("mode") == "performance" and clean:
            found.setdefault((e["task"], e["scenario"]), []).append((int(e["repeat"]), float(e["result"])))
    out = []
    for row in rows:
        mine = found.get((row.task, row.scenario), []) if row.mode == "performance" else []
        values = [v for _, v in sorted(mine)]
        if values:
            cv = statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else None
            row = replace(row, repeat_values=json.dumps(values), repeat_cv=cv)
        out.append(row)
    return out


PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p97": 97.0, "p99": 99.0, "p99.9": 99.9}


def _latencies(host_dir: Path, entry: dict[str, Any]) -> dict[str, float]:
    """Latency percentiles (ms) from the entry's detail log; {} when there is none to read."""
    rel = entry.get("dir")
    if not rel:
        return {}
    path = (host_dir / rel / "mlperf_log_detail.txt").resolve()
    if not path.is_relative_to(host_dir.resolve()) or not path.is_file():
        return {}
    log = parse_detail(path)
    found = {label: log.latency_percentile_ns(pct) for label, pct in PERCENTILES.items()}
    found["mean"] = log.number("result_mean_latency_ns")
    return {label: ns / 1e6 for label, ns in found.items() if ns is not None}


def failed_from_runstate(run_dir: Path) -> list[FailedJob]:
    """Jobs run.json records as not ok, one per mode."""
    from fleet.runstate import OK, RunState

    path = Path(run_dir) / "run.json"
    if not path.exists():
        return []
    state = RunState.load(path)
    out = []
    for job in state.jobs.values():
        if job.status == OK or job.repeat:  # a failed repeat only thins the night's median
            continue
        node = state.nodes.get(job.host)
        reason = job.error or (f"{job.status} at {job.stage}" if job.stage else job.status)
        system, category = (node.system_name, node.category) if node else (None, None)
        out.extend(
            FailedJob(job.host, job.task, job.scenario, mode, reason, system=system, category=category)
            for mode in job.modes
        )
    return out
