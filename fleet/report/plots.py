"""matplotlib figures of a results frame, as PNG bytes (no pyplot state, no display needed).

The tables behind each figure are built by pure functions (tested without drawing); the
figures only draw them.
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

THROUGHPUT_SCENARIOS = ("Offline", "Server")
LATENCY_COLUMNS = ("p50_ms", "p90_ms", "p99_ms")
MAX_GROUPS = 40  # more bar groups than this per latency panel: show the median over systems


def throughput_tables(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, unit, system x task table) for Offline samples/s and Server queries/s."""
    perf = frame[(frame["mode"] == "performance") & frame["scenario"].isin(THROUGHPUT_SCENARIOS)]
    perf = perf.dropna(subset=["value"])
    tables = []
    for scenario in (s for s in THROUGHPUT_SCENARIOS if s in set(perf["scenario"])):
        rows = perf[perf["scenario"] == scenario]
        table = rows.pivot_table(index="system", columns="task", values="value", aggfunc="first")
        tables.append((f"{scenario} throughput", str(rows["unit"].iloc[0]), table))
    return tables


def latency_tables(frame: pd.DataFrame, max_groups: int = MAX_GROUPS) -> list[tuple[str, pd.DataFrame]]:
    """(title, table of p50/p90/p99 in ms) per scenario: one row per system and task, or per
    task (median over systems) when there are more than `max_groups` rows (a 100-host lab)."""
    perf = frame[frame["mode"] == "performance"].dropna(subset=list(LATENCY_COLUMNS), how="all")
    tables = []
    for scenario in sorted(set(perf["scenario"])):
        rows = perf[perf["scenario"] == scenario]
        title = f"{scenario} latency"
        if len(rows) > max_groups:
            table = rows.groupby("task")[list(LATENCY_COLUMNS)].median()
            title += f" (median of {rows['system'].nunique()} systems)"
        else:
            table = rows.set_index(rows["system"] + " " + rows["task"])[list(LATENCY_COLUMNS)]
        table.columns = ["p50", "p90", "p99"]
        tables.append((title, table))
    return tables


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _panel_width(groups: int) -> float:
    """Inches per panel: wide enough for its bar groups, never huge."""
    return min(max(4.5, 0.3 * groups), 24.0)


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


def throughput_png(frame: pd.DataFrame) -> bytes | None:
    tables = throughput_tables(frame)
    if not tables:
        return None
    fig = Figure(figsize=(_panel_width(max(len(t.index) for _, _, t in tables)), 3.5 * len(tables)))
    for i, (title, unit, table) in enumerate(tables, start=1):
        _grouped_bars(fig.add_subplot(len(tables), 1, i), table, unit, title)
    fig.tight_layout()
    return _png(fig)


def latency_png(frame: pd.DataFrame) -> bytes | None:
    tables = latency_tables(frame)
    if not tables:
        return None
    columns = min(2, len(tables))
    rows_n = (len(tables) + columns - 1) // columns
    fig = Figure(figsize=(_panel_width(max(len(t.index) for _, t in tables)) * columns, 3.5 * rows_n))
    for i, (title, table) in enumerate(tables, start=1):
        _grouped_bars(fig.add_subplot(rows_n, columns, i), table, "latency (ms)", title)
    fig.tight_layout()
    return _png(fig)
