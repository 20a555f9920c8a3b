"""The morning page: one self-contained HTML file of trends and regressions across runs.

Everything is inline (CSS, and matplotlib PNGs as base64 data URIs), so the file can be
mailed, archived or opened from a share with no server and no network. One plot per
(task, scenario) over time, one line per system (each night's median, its repeats as dots),
the judged night's noise band (baseline +- bar, over the nights that make the baseline),
confirmed regressions ringed in red and suspect nights in orange, invalid results drawn
hollow; tables above the plots say what got worse, what broke, what waits for a second night,
what improved, and which series are too noisy to judge.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path

from fleet.history.store import ResultRow
from fleet.history.table import COLUMNS, NUMERIC, policy_line, summary_line, verdict_cells
from fleet.regress import SUSPECT, TOO_NOISY, Report, Verdict, lower_is_better, night_value, repeat_values

TITLE = "mlperf-fleet history"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecea}tr.good td{background:#eaf6ec}tr.warn td{background:#fff4e0}
.summary span{display:inline-block;margin-right:1.5em;font-weight:600}
.bad{color:#b3261e}.good{color:#1e7b34}figure{margin:1em 0}figcaption{font-size:.85em;color:#555}
"""


Jobs = Sequence[Mapping[str, str]]


def render_trend(rows: Sequence[ResultRow], report: Report, title: str = TITLE, jobs: Jobs = ()) -> str:
    """The whole page as one HTML string; `jobs` (a sweep's every job, as flat dicts) adds a table."""
    worse = [v for v in report.verdicts if v.regression]
    better = [v for v in report.verdicts if v.improvement]
    suspect = [v for v in report.verdicts if v.state == SUSPECT]
    noisy = [v for v in report.verdicts if v.state == TOO_NOISY]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _summary(report, worse, better, rows),
        "<h2>Regressions and breaks</h2>",
        _verdict_table(worse, "bad", "No confirmed regressions and nothing broke in this run."),
        "<h2>Suspect: past the bar for one night, the next night decides</h2>",
        _verdict_table(suspect, "warn", "No suspect series."),
        "<h2>Improvements</h2>",
        _verdict_table(better, "good", "No confirmed improvements."),
        "<h2>Too noisy to judge</h2>",
        _verdict_table(noisy, "", "Every series with a baseline can tell a change of the threshold."),
        "<h2>Every series of this run</h2>",
        _verdict_table(list(report.verdicts), "", "This run has no results."),
        "<h2>The nights each baseline stands on</h2>",
        _baseline_list(report),
        *(["<h2>Every job of this run</h2>", _job_table(jobs)] if jobs else []),
        "<h2>Trends</h2>",
        *_plots(rows, report),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_trend(
    path: Path, rows: Sequence[ResultRow], report: Report, title: str = TITLE, jobs: Jobs = ()
) -> Path:
    """Write the page atomically, so a browser never reads half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_trend(rows, report, title, jobs), encoding="utf-8")
    tmp.replace(path)
    return path


def _summary(report: Report, worse: list[Verdict], better: list[Verdict], rows: Sequence[ResultRow]) -> str:
    runs = len({r.run_id for r in rows})
    return (
        '<p class="summary">'
        f"<span>Run judged: {escape(report.run_id or 'none')}</span>"
        f'<span class="{"bad" if worse else ""}">Regressions and breaks: {len(worse)}</span>'
        f'<span class="{"good" if better else ""}">Improvements: {len(better)}</span>'
        f"<span>Series: {len(report.verdicts)}</span><span>Runs in view: {runs}</span></p>"
        f"<p>{escape(summary_line(report))}.</p>"
        f"<p>Rule: {escape(policy_line(report))}; nights of the same profile and asset kind only. "
        "Throughput (Offline, Server) lower is worse; latency (SingleStream, MultiStream) higher is "
        "worse.</p>"
    )


def _baseline_list(report: Report) -> str:
    items = [
        f"<li>{escape(f'{v.system} {v.task} {v.scenario}')}: {escape(', '.join(v.baseline_run_ids))}</li>"
        for v in report.verdicts
        if v.baseline_run_ids
    ]
    return f"<ul>{''.join(items)}</ul>" if items else "<p>No series has a baseline yet.</p>"


def _verdict_table(verdicts: list[Verdict], css: str, empty: str) -> str:
    if not verdicts:
        return f"<p>{escape(empty)}</p>"
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in COLUMNS), "</tr></thead><tbody>"]
    for v in verdicts:
        row_css = css or ("bad" if v.regression else "good" if v.improvement else "")
        out.append(f'<tr class="{row_css}">')
        for column, cell in zip(COLUMNS, verdict_cells(v), strict=True):
            num = ' class="num"' if column in NUMERIC else ""
            out.append(f"<td{num}>{escape(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _job_table(jobs: Jobs) -> str:
    head = list(jobs[0])
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for job in jobs:
        css = "" if job.get("status") == "ok" else "bad"
        out.append(f'<tr class="{css}">' + "".join(f"<td>{escape(str(job.get(h, '')))}</td>" for h in head))
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _plots(rows: Sequence[ResultRow], report: Report) -> list[str]:
    perf = [r for r in rows if r.mode == "performance" and r.value is not None]
    if not perf:
        return ["<p>No performance results to plot.</p>"]
    verdicts = {(v.system, v.task, v.scenario): v for v in report.verdicts}
    groups: dict[tuple[str, str], list[ResultRow]] = {}
    for row in perf:
        groups.setdefault((row.task, row.scenario), []).append(row)
    out = []
    for (task, scenario), members in sorted(groups.items()):
        png = _plot_png(task, scenario, members, verdicts, report.run_id)
        caption = f"{task} · {scenario}: {members[0].metric or ''}, one line per system"
        out.append(
            f'<figure><img alt="{escape(task)} {escape(scenario)} trend" '
            f'src="data:image/png;base64,{png}"><figcaption>{escape(caption)}</figcaption></figure>'
        )
    return out


def _plot_png(
    task: str, scenario: str, rows: list[ResultRow], verdicts: Mapping[tuple[str, str, str], Verdict],
    run_id: str | None,
) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.4), dpi=96)
    try:
        by_system: dict[str, list[ResultRow]] = {}
        for row in rows:
            by_system.setdefault(row.system, []).append(row)
        for system, points in sorted(by_system.items()):
            times = [datetime.fromisoformat(p.time) for p in points]
            values = [night_value(p) for p in points]
            (line,) = ax.plot(times, values, marker="o", label=system)
            dots = [(t, r) for t, p in zip(times, points, strict=True) for r in repeat_values(p)]
            if dots:
                ax.scatter(*zip(*dots, strict=True), s=8, color=line.get_color(), alpha=0.5, zorder=2)
            verdict = verdicts.get((system, task, scenario))
            if verdict is not None and verdict.baseline is not None and verdict.bar is not None:
                at = {p.run_id: t for p, t in zip(points, times, strict=True)}
                span = [at[r] for r in verdict.baseline_run_ids if r in at]
                span.append(at.get(run_id or "", times[-1]))
                low, high = verdict.baseline * (1 - verdict.bar), verdict.baseline * (1 + verdict.bar)
                ax.fill_between([min(span), max(span)], low, high, color=line.get_color(), alpha=0.12,
                                label=f"{system}: baseline ± bar")  # fmt: skip
            invalid = [(t, v) for t, v, p in zip(times, values, points, strict=True) if p.validity != "VALID"]
            if invalid:
                ax.scatter(*zip(*invalid, strict=True), s=70, facecolors="white", edgecolors=line.get_color(),
                           zorder=3)  # fmt: skip
            ring = None if verdict is None else "red" if verdict.regression else (
                "orange" if verdict.state == SUSPECT else None)
            if ring:
                last = [(t, v) for t, v, p in zip(times, values, points, strict=True) if p.run_id == run_id]
                if last:
                    what = "regression" if ring == "red" else "suspect"
                    ax.scatter(*zip(*last, strict=True), s=260, facecolors="none", edgecolors=ring,
                               linewidths=2, zorder=4, label=f"{system}: {what}")  # fmt: skip
        direction = "lower is better" if lower_is_better(scenario) else "higher is better"
        ax.set_title(f"{task} · {scenario}")
        ax.set_ylabel(f"{rows[0].metric or 'value'} ({direction})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
