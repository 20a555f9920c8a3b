"""What tuning leaves on the node: OUT/tuning.json, a readable log, a manifest entry.

OUT/tuning.json (`tuning_version: 1`) holds, per task and scenario, the chosen settings, the
values that go into RunSpec.tuning, what was measured and every trial, plus the host-facts
digest it was measured under:

    {"tuning_version": 1, "round": "v3.1", "facts_digest": "...", "facts": {...},
     "tasks": {"resnet50": {"Offline": {"status": "ok", "settings": {...}, "tuning": {...},
                                        "measured": {...}, "trials": [...], ...}}}}

Several harness processes of one node write the same OUT one after another (one per job),
so the file is merged under a lock. Each scenario also gets a `mode: "tune"` manifest entry,
which is how the controller sees a tuning job's outcome.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet.harness import manifest
from fleet.harness.jsonfile import write_json
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import RunSpec
from fleet.harness.tuning.digest import digest_fields, facts_digest

TUNING_FILE = "tuning.json"
TUNING_VERSION = 1
# The value each scenario's manifest entry reports, and its unit.
HEADLINE = {
    "Offline": ("offline_expected_qps", "Samples/s (expected)"),
    "Server": ("server_target_qps", "Queries/s (target)"),
    "SingleStream": ("singlestream_expected_latency_ms", "ms (expected latency)"),
    "MultiStream": ("multistream_expected_latency_ms", "ms (expected latency)"),
}


class Log:
    """Appends lines to the scenario's tuning.log and echoes them."""

    def __init__(self, path: Path, echo: Callable[[str], None]) -> None:
        self.path = path
        self.echo = echo

    def __call__(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        self.echo(line)


def summary_line(task: str, rec: dict[str, Any]) -> str:
    head = f"tuned {task} {rec['scenario']}"
    trials = f"{rec.get('trial_count', 0)} trials, {rec.get('wall_s', 0):.0f} s"
    if rec["status"] != "ok":
        return f"{head}: FAILED ({trials}): {rec['error']}"
    values = " ".join(f"{k}={v}" for k, v in (rec["tuning"] or {}).items())
    return f"{head}: {values} ({trials})"


def read(out: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(out) / TUNING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def save(out: Path, spec: RunSpec, rec: dict[str, Any], host: dict[str, Any], versions: dict[str, Any],
         started_monotonic: float) -> None:
    """Merge one scenario's record into OUT/tuning.json and record its manifest entry."""
    out = Path(out)
    digest = facts_digest(host, versions)
    with manifest.locked(out, ".tuning.lock"):
        data = read(out) or {}
        if data.get("facts_digest") != digest:
            data = {}  # tuned on another machine state: start over
        tasks = data.get("tasks") or {}
        tasks.setdefault(spec.task, {})[rec["scenario"]] = rec
        data = {"tuning_version": TUNING_VERSION, "round": rules.ROUND, "facts_digest": digest,
                "facts": digest_fields(host, versions), "hostname": host.get("hostname"),
                "system_name": spec.system_name, "tasks": tasks}
        write_json(out / TUNING_FILE, data, default=str)
    key, unit = HEADLINE[rec["scenario"]]
    tuned = rec.get("tuning") or {}
    finished = _now()
    model = rules.model_for_task(spec.task).name if spec.task in rules.TASK_TO_MODEL else spec.task
    entry = {
        "task": spec.task, "model": model, "scenario": rec["scenario"], "mode": "tune",
        "profile": spec.profile, "backend": spec.backend,
        "execution_provider": tuned.get("execution_provider"), "threads": tuned.get("threads"),
        "batch_size": tuned.get("batch_size") or tuned.get("server_max_batch"),
        "synthetic": spec.synthetic, "model_path": spec.model or None, "model_sha256": None,
        "dataset_path": spec.dataset or None, "dataset_sha256": None,
        "dir": f"{spec.task}/{rec['scenario']}/tuning", "started": rec.get("started") or finished,
        "finished": finished, "duration_s": round(time.monotonic() - started_monotonic, 3),
        "outcome": "ok" if rec["status"] == "ok" else "failed", "error": rec.get("error"),
        "result_validity": None, "result": tuned.get(key), "result_unit": unit,
        "accuracy": None, "verify": None,
    }
    manifest.record_run(out, entry, host, versions)
