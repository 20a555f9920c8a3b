"""One pandas DataFrame of every result of a run: rows from raw logs, frame building kept pure.

`collect_rows` reads runs/<run>/raw/ (manifests + LoadGen logs through fleet.logparse);
`results_frame` turns rows into the typed, ordered frame the publishers write. Values come
from the logs themselves, not from the manifest's copy, so a report shows what a checker sees.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from fleet import logparse
from fleet.harness.rules import v3_1 as rules
from fleet.submission.rawrun import RawHost, load_hosts

COLUMNS: tuple[str, ...] = (
    "run_id",
    "system",
    "category",
    "task",
    "model",
    "scenario",
    "mode",
    "metric",
    "value",
    "unit",
    "validity",
    "accuracy",
    "accuracy_target",
    "accuracy_ok",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "verify",
    "profile",
    "synthetic",
    "outcome",
)
METRIC_NAMES = {
    "Offline": "throughput",
    "Server": "scheduled throughput",
    "SingleStream": "p90 latency (early stopping)",
    "MultiStream": "p99 latency (early stopping)",
}
_ORDER = {name: i for i, name in enumerate(rules.MODES)}


def _performance_fields(run_path: Path, scenario: str) -> dict[str, Any]:
    detail = run_path / "mlperf_log_detail.txt"
    if not detail.is_file():
        return {}
    log = logparse.parse_detail(detail)
    key, unit, divisor = rules.RESULT_KEYS[scenario]
    value = log.number(key)
    fields: dict[str, Any] = {
        "metric": METRIC_NAMES[scenario],
        "value": None if value is None else value / divisor,
        "unit": unit,
        "validity": log.validity,
    }
    for pct, column in ((50.0, "p50_ms"), (90.0, "p90_ms"), (99.0, "p99_ms")):
        ns = log.latency_percentile_ns(pct)
        fields[column] = None if ns is None else ns / 1e6
    return fields


def _accuracy_fields(run_path: Path, model: rules.ModelRules) -> dict[str, Any]:
    metric = model.accuracy[0]
    fields: dict[str, Any] = {"metric": metric.name, "accuracy_target": metric.threshold}
    txt = run_path / "accuracy.txt"
    if txt.is_file():
        parsed = logparse.parse_accuracy(txt, [(m.name, m.pattern) for m in model.accuracy])
        value = parsed.first(metric.name)
        fields.update(value=value, accuracy=value, unit="")
        fields["accuracy_ok"] = (
            None
            if value is None
            else all(
                all(v >= m.threshold for v in parsed.metrics.get(m.name, [])) and m.name in parsed.metrics
                for m in model.accuracy
            )
        )
    detail = run_path / "mlperf_log_detail.txt"
    if detail.is_file() and logparse.parse_detail(detail).errors:
        fields["validity"] = "errors in log"
    return fields


def host_rows(host: RawHost, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for run in host.runs:
        model = rules.model_for_task(run["task"])
        mode = run["mode"]
        scenario = run["scenario"]
        row: dict[str, Any] = {
            "run_id": run_id,
            "system": host.system_name,
            "category": host.category,
            "task": run["task"],
            "model": model.name,
            "scenario": scenario,
            "mode": mode,
            "profile": run.get("profile") or "",
            "synthetic": bool(run.get("synthetic")),
            "outcome": run.get("outcome") or "",
        }
        path = host.run_path(run)
        if mode == "accuracy":
            row.update(_accuracy_fields(path, model))
        elif scenario in rules.RESULT_KEYS:
            row.update(_performance_fields(path, scenario))
        if mode in rules.COMPLIANCE_TESTS:
            verify = host.path / run["task"] / scenario / mode / "verify_performance.txt"
            row["verify"] = logparse.parse_verify(verify).verdict or None if verify.is_file() else None
        rows.append(row)
    return rows


def collect_rows(run_dir: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    run_id = run_id or Path(run_dir).name
    rows: list[dict[str, Any]] = []
    for host in load_hosts(Path(run_dir)):
        rows.extend(host_rows(host, run_id))
    return rows


def results_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> frame with every column of COLUMNS, sorted by system, task, scenario, mode."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("value", "accuracy", "accuracy_target", "p50_ms", "p90_ms", "p99_ms"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["synthetic"] = frame["synthetic"].fillna(False).astype(bool)
    frame["accuracy_ok"] = frame["accuracy_ok"].astype("boolean")
    frame["_mode_order"] = frame["mode"].map(_ORDER).fillna(len(_ORDER))
    frame = frame.sort_values(["system", "task", "scenario", "_mode_order"], kind="stable")
    return frame.drop(columns="_mode_order").reset_index(drop=True)
