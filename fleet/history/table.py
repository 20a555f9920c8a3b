"""A verdict as table cells, shared by the text table (terminal, cron mail) and the HTML page."""

from __future__ import annotations

from fleet.regress import REGRESSION, SUSPECT, TOO_NOISY, Report, Verdict

COLUMNS = (
    "System", "Task", "Scenario", "Assets", "Metric", "Tonight", "Runs", "Baseline (nights)", "Noise",
    "Bar", "Change", "Validity", "Verdict", "Notes",
)  # fmt: skip
NUMERIC = frozenset({"Tonight", "Runs", "Baseline (nights)", "Noise", "Bar", "Change"})


def fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def verdict_word(v: Verdict) -> str:
    """The series' state, upper-cased when it is a confirmed regression, with any breaking flags."""
    word = v.state.upper() if v.state == REGRESSION else v.state
    broke = [f.kind for f in v.flags if f.regression]
    return f"{word} / {', '.join(broke)}" if broke else word


def baseline_nights(v: Verdict) -> str:
    """The runs whose median is the baseline, first and last (all of them on the HTML page)."""
    ids = v.baseline_run_ids
    if not ids:
        return ""
    return ids[0] if len(ids) == 1 else f"{ids[0]} .. {ids[-1]}"


def verdict_notes(v: Verdict) -> list[str]:
    notes = [v.message] if v.message else []
    notes += [f.message for f in v.flags]
    if v.shared_with:
        notes.append(f"measured while sharing hardware with {v.shared_with}")
    if v.state in (REGRESSION, SUSPECT) and v.baseline_run_ids:
        notes.append(f"baseline nights {baseline_nights(v)}")
    notes += list(v.causes)
    return notes


def verdict_cells(v: Verdict) -> list[str]:
    """One row of COLUMNS."""
    runs = str(v.repeats or 1) + (f" ±{v.repeat_cv:.1%}" if v.repeat_cv is not None else "")
    baseline = f"{fmt(v.baseline)} ({v.baseline_n})" if v.baseline is not None else "-"
    assets = "synthetic" if v.synthetic else "real"
    return [v.system, v.task, v.scenario, assets, v.metric or "-", fmt(v.value), runs, baseline,
            fmt(v.spread, ".1%"), fmt(v.bar, ".1%"), fmt(v.change, "+.1%"), v.validity or "-",
            verdict_word(v), "; ".join(verdict_notes(v))]  # fmt: skip


def policy_line(report: Report) -> str:
    p = report.policy
    return (f"threshold {p.threshold:.1%}; bar max(threshold, {p.sigmas:g} x night-to-night spread); "
            f"baseline: median of the last {p.baseline_runs} clean nights, at least {p.min_runs}; "
            "a step counts on its second night running")  # fmt: skip


def summary_line(report: Report) -> str:
    counts = {s: report.count(s) for s in (REGRESSION, SUSPECT, TOO_NOISY, "no-baseline")}
    broken = sum(1 for v in report.regressions if v.state != REGRESSION)
    return (f"run {report.run_id}: {counts[REGRESSION]} confirmed regression(s), {broken} broken or flagged "
            f"job(s), {counts[SUSPECT]} suspect, {len(report.improvements)} improvement(s), "
            f"{counts[TOO_NOISY]} too noisy to judge, {counts['no-baseline']} without a baseline yet")


def render_table(report: Report) -> str:
    """Plain aligned text, one line per series of the judged run, then the verdict and the rule."""
    if not report.verdicts:
        return "no results in view"
    lines = [[c.upper() for c in COLUMNS], *(verdict_cells(v) for v in report.verdicts)]
    widths = [max(len(row[i]) for row in lines) for i in range(len(COLUMNS) - 1)]
    text = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in lines
    ]
    text.append(summary_line(report))
    text.append(policy_line(report))
    return "\n".join(text)
