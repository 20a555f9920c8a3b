"""Run directories in the shape of docs/contracts.md, for tests that need no real nodes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fleet.harness.rules.v3_1 import RESULT_KEYS
from fleet.harness.spec import run_dir

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
VERSIONS = {"python": "3.11.2", "fleet": "0.1.0", "loadgen": "4.1", "onnxruntime": "1.17.1", "numpy": "1.26"}


def host_facts(hostname: str, **extra: Any) -> dict[str, Any]:
    facts = {
        "hostname": hostname, "cpu_model": "Test CPU", "sockets": 1, "cores_per_socket": 2,
        "threads_per_core": 1, "logical_cpus": 2, "cpu_max_mhz": "3000", "caches": "L3 32 MiB",
        "memory_bytes": 25_000_000_000, "os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0",
        "libc": "glibc 2.36", "accelerators": [], "cpu_quota": None,
    }  # fmt: skip
    facts.update(extra)
    return facts


def entry(
    task: str = "resnet50",
    scenario: str = "Offline",
    mode: str = "performance",
    value: float | None = 100.0,
    validity: str | None = "VALID",
    *,
    started: datetime = T0,
    outcome: str = "ok",
    accuracy: float | None = None,
    verify: str | None = None,
    profile: str = "smoke",
    synthetic: bool = True,
    error: str | None = None,
) -> dict[str, Any]:
    perf = mode == "performance"
    return {
        "task": task, "model": task, "scenario": scenario, "mode": mode, "profile": profile,
        "backend": "onnxruntime", "execution_provider": "CPUExecutionProvider", "threads": 2,
        "batch_size": 8, "synthetic": synthetic, "model_path": "/m", "model_sha256": "0" * 64,
        "dataset_path": "/d", "dataset_sha256": "1" * 64,
        "dir": str(run_dir(Path(""), task, scenario, mode)),
        "started": started.isoformat(), "finished": (started + timedelta(seconds=10)).isoformat(),
        "duration_s": 10.0, "outcome": outcome, "error": error,
        "result_validity": validity if perf else None, "result": value if perf else None,
        "result_unit": RESULT_KEYS[scenario][1] if perf else None,
        "accuracy": accuracy, "verify": verify,
    }  # fmt: skip


@dataclass
class Host:
    name: str
    entries: list[dict[str, Any]]
    system: str | None = None
    category: str = "edge"
    versions: dict[str, str] = field(default_factory=lambda: dict(VERSIONS))
    facts: dict[str, Any] | None = None
    manifest: bool = True


def detail_log(latencies_ns: dict[str, float]) -> str:
    """mlperf_log_detail.txt lines (`:::MLLOG` JSON) carrying the given keys."""
    meta = {"is_error": False, "is_warning": False, "file": "loadgen.cc", "line_no": 1, "pid": 1, "tid": 1}
    return "".join(
        ":::MLLOG " + json.dumps({"key": k, "value": v, "time_ms": 0.0, "namespace": "mlperf::logging",
                                  "event_type": "POINT_IN_TIME", "metadata": meta}) + "\n"
        for k, v in latencies_ns.items()
    )  # fmt: skip


def write_run(runs: Path, run_id: str, hosts: list[Host]) -> Path:
    """runs/<run_id>/raw/<host>/{manifest.json,node.json} as collect leaves them; an entry's
    `latencies_ns` (a test-only key) becomes its mlperf_log_detail.txt."""
    root = Path(runs) / run_id
    for host in hosts:
        hdir = root / "raw" / host.name
        hdir.mkdir(parents=True, exist_ok=True)
        facts = host.facts or host_facts(host.name)
        node = {
            "inventory_hostname": host.name, "system_name": host.system or f"{host.name}_cpu",
            "category": host.category, "system_overrides": {}, "facts": {"cpu_model": facts["cpu_model"]},
        }  # fmt: skip
        (hdir / "node.json").write_text(json.dumps(node))
        for e in host.entries:
            if "latencies_ns" in e:
                logdir = hdir / e["dir"]
                logdir.mkdir(parents=True, exist_ok=True)
                (logdir / "mlperf_log_detail.txt").write_text(detail_log(e.pop("latencies_ns")))
        if host.manifest:
            manifest = {"manifest_version": 1, "round": "v3.1", "host": facts,
                        "versions": host.versions, "runs": host.entries}  # fmt: skip
            (hdir / "manifest.json").write_text(json.dumps(manifest))
    return root
