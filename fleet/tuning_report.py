"""The tuning section of a report: what each system was tuned to, and every trial behind it.

Reads run_dir/tuning.json (written by `fleet run --tuned` for the values it applied, and by
`fleet tune` for what it found). Returns "" when a run used no tuning, so reports can always
append it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleet.tuning_store import APPLIED_FILE

CHOSEN_HEAD = ["system", "task", "scenario", "settings", "LoadGen values", "trials", "search", "tune run"]
TRIAL_HEAD = ["#", "kind", "runs", "settings", "asked", "result", "validity", "p99 ms", "note"]


def _load(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / APPLIED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("hosts") else None


def _kv(mapping: dict[str, Any] | None, skip: tuple[str, ...] = ()) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in (mapping or {}).items() if k not in skip)


def _records(data: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    for host, tasks in sorted(data["hosts"].items()):
        for task, stored in sorted(tasks.items()):
            for scenario, rec in sorted((stored.get("scenarios") or {}).items()):
                yield stored.get("system_name") or host, task, scenario, stored, rec


def _search(rec: dict[str, Any]) -> str:
    server = rec.get("server_search")
    if server:
        best, ceiling = server.get("best") or {}, server.get("ceiling") or {}
        parts = [f"Server VALID at {best.get('target_qps', float('nan')):.4g} QPS"]
        if ceiling:
            parts.append(f"INVALID at {ceiling['target_qps']:.4g}")
        parts.append(f"margin {rec.get('safety_margin')}")
        return ", ".join(parts) + f" ({server.get('stopped_by')})"
    knobs = rec.get("knob_search") or {}
    return f"knobs: {knobs.get('stopped_by', '-')}"


def chosen_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for system, task, scenario, stored, rec in _records(data):
        status = "" if rec.get("status") == "ok" else f"FAILED: {rec.get('error')} "
        targets = _kv(rec.get("tuning"), skip=("threads", "graph_optimization", "execution_provider"))
        rows.append([system, task, scenario, status + _kv(rec.get("settings")), targets,
                     str(rec.get("trial_count", len(rec.get("trials") or []))), _search(rec),
                     str(stored.get("run_id") or "")])
    return rows


def trial_rows(rec: dict[str, Any]) -> list[list[str]]:
    rows = []
    for t in rec.get("trials") or []:
        result = f"{t['result']:.4g} {t.get('unit') or ''}".strip() if t.get("result") is not None else ""
        note = t.get("note") or ("" if t.get("ok") else str(t.get("error") or ""))
        if not note and t.get("validity") not in (None, "VALID"):
            note = t.get("invalid_reason") or ""
        latency = t.get("p99_ms") is not None and t.get("scenario") != "Offline"  # Offline: meaningless
        p99 = f"{t['p99_ms']:.2f}" if latency else ""
        validity = t.get("validity") or ("" if t.get("ok") else "failed")
        rows.append([str(t.get("n")), str(t.get("kind")), str(t.get("scenario")), _kv(t.get("settings")),
                     _kv(t.get("conf")), result, validity, p99, note])
    return rows


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def tuning_markdown(run_dir: str | Path) -> str:
    """The report's tuning section in Markdown ("" when the run used no tuning)."""
    data = _load(Path(run_dir))
    if data is None:
        return ""
    lines = ["", "## Tuning", "", "Values from `fleet tune` (short LoadGen trials on each node).", ""]
    lines += _md_table(CHOSEN_HEAD, chosen_rows(data))
    for system, task, scenario, _stored, rec in _records(data):
        lines += ["", f"### Trials: {system} {task} {scenario}", ""]
        lines += _md_table(TRIAL_HEAD, trial_rows(rec))
    return "\n".join(lines) + "\n"


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="t">{html.escape(c)}</td>' for c in row) + "</tr>")
    return "\n".join(out) + "</table>"


def tuning_html(run_dir: str | Path) -> str:
    """The report's tuning section as an HTML fragment ("" when the run used no tuning)."""
    data = _load(Path(run_dir))
    if data is None:
        return ""
    parts = ['<h2 id="tuning">Tuning</h2>', "<p>Values from <code>fleet tune</code> "
             "(short LoadGen trials on each node).</p>",
             f'<div class="wide">{_html_table(CHOSEN_HEAD, chosen_rows(data))}</div>']
    for system, task, scenario, _stored, rec in _records(data):
        parts.append(f"<details><summary>Trials: {html.escape(f'{system} {task} {scenario}')}</summary>"
                     f'<div class="wide">{_html_table(TRIAL_HEAD, trial_rows(rec))}</div></details>')
    return "\n".join(parts) + "\n"


def with_tuning_html(page: str, run_dir: str | Path) -> str:
    """`page` with the tuning section inserted before </body> (unchanged without tuning)."""
    section = tuning_html(run_dir)
    at = page.rfind("</body>")
    return page if not section or at < 0 else page[:at] + section + page[at:]
