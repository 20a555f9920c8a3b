"""A verdict as table cells, shared by the text table (terminal, cron mail) and the HTML page."""

from __future__ import annotations

from fleet.regress import Report, Verdict

COLUMNS = (
    "System", "Task", "Scenario", "Assets", "Metric", "Latest", "Baseline (n)", "Change", "Validity", "State",
    "Notes",
)  # fmt: skip
NUMERIC = frozenset({"Latest", "Baseline (n)", "Change"})


def fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def verdict_cells(v: Verdict) -> list[str]:
    """One row of COLUMNS."""
    state = "REGRESSION" if v.regression else "improved" if v.improvement else "ok"
    notes = "; ".join([*(f.message for f in v.flags), *v.causes])
    baseline = f"{fmt(v.baseline)} ({v.baseline_n})" if v.baseline is not None else "-"
    assets = "synthetic" if v.synthetic else "real"
    return [v.system, v.task, v.scenario, assets, v.metric or "-", fmt(v.value), baseline,
            fmt(v.change, "+.1%"), v.validity or "-", state, notes]  # fmt: skip


def render_table(report: Report) -> str:
    """Plain aligned text, one line per series of the judged run, then a one-line verdict."""
    if not report.verdicts:
        return "no results in view"
    lines = [[c.upper() for c in COLUMNS], *(verdict_cells(v) for v in report.verdicts)]
    widths = [max(len(row[i]) for row in lines) for i in range(len(COLUMNS) - 1)]
    text = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in lines
    ]
    policy = report.policy
    text.append(
        f"run {report.run_id}: {len(report.regressions)} regression(s), "
        f"{len(report.improvements)} improvement(s); threshold {policy.threshold:.1%}, "
        f"baseline median of last {policy.baseline_runs} valid"
    )
    return "\n".join(text)
