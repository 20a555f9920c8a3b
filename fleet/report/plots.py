"""matplotlib figures of a results frame, as PNG bytes (no pyplot state, no display needed)."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

THROUGHPUT_SCENARIOS = ("Offline", "Server")
LATENCY_COLUMNS = ("p50_ms", "p90_ms", "p99_ms")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _grouped_bars(ax: Axes, table: pd.DataFrame, ylabel: str, title: str) -> None:
    """One group per row of `table`, one bar per column."""
    width = 0.8 / max(len(table.columns), 1)
    positions = range(len(table.index))
    for i, column in enumerate(table.columns):
        ax.bar([p + i * width for p in positions], table[column].fillna(0).tolist(), width, label=str(column))
    ax.set_xticks([p + width * (len(table.columns) - 1) / 2 for p in positions])
    ax.set_xticklabels([str(i) for i in table.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)


def _panel_size(groups: int) -> float:
    """Inches per panel: wide enough for its groups (100 systems stay readable), never huge."""
    return min(max(4.5, 0.3 * groups), 24.0)


def throughput_png(frame: pd.DataFrame) -> bytes | None:
    """Samples/s (Offline) and queries/s (Server) per system, one bar per task."""
    perf = frame[(frame["mode"] == "performance") & frame["scenario"].isin(THROUGHPUT_SCENARIOS)]
    perf = perf.dropna(subset=["value"])
    scenarios = [s for s in THROUGHPUT_SCENARIOS if s in set(perf["scenario"])]
    if not scenarios:
        return None
    width = _panel_size(perf["system"].nunique())
    fig = Figure(figsize=(width, 3.5 * len(scenarios)))
    for i, scenario in enumerate(scenarios, start=1):
        rows = perf[perf["scenario"] == scenario]
        table = rows.pivot_table(index="system", columns="task", values="value", aggfunc="first")
        unit = rows["unit"].iloc[0]
        _grouped_bars(fig.add_subplot(len(scenarios), 1, i), table, unit, f"{scenario} throughput")
    fig.tight_layout()
    return _png(fig)


def latency_png(frame: pd.DataFrame) -> bytes | None:
    """p50/p90/p99 latency per system and task, one panel per scenario (two per row)."""
    perf = frame[frame["mode"] == "performance"].dropna(subset=list(LATENCY_COLUMNS), how="all")
    scenarios = sorted(set(perf["scenario"]))
    if not scenarios:
        return None
    columns = min(2, len(scenarios))
    rows_n = (len(scenarios) + columns - 1) // columns
    groups = max(int((perf["scenario"] == s).sum()) for s in scenarios)
    fig = Figure(figsize=(_panel_size(groups) * columns, 3.5 * rows_n))
    for i, scenario in enumerate(scenarios, start=1):
        rows = perf[perf["scenario"] == scenario]
        table = rows.set_index(rows["system"] + " " + rows["task"])[list(LATENCY_COLUMNS)]
        table.columns = ["p50", "p90", "p99"]
        _grouped_bars(fig.add_subplot(rows_n, columns, i), table, "latency (ms)", f"{scenario} latency")
    fig.tight_layout()
    return _png(fig)
