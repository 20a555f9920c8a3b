"""What the user sees while a run goes: one live row per node (rich), or plain lines.

On a terminal: a live table with each node's stage, current job, jobs done and elapsed time.
Not on a terminal (CI, pipes): one plain line per stage change or job end. While a job runs,
the node reports what the harness is running now (task, scenario, mode and since when); the
table shows it, and plain output prints `node2 resnet50 Server TEST05 4m10s` when the mode
changes and at least every HEARTBEAT_S seconds, so a ten-minute mode is never silent.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

# Plain output prints a running mode again once this long has passed since its last line: with
# a report every 12 s (plus the report's own second), every second report, ~25 s apart.
HEARTBEAT_S = 20.0


@dataclass
class Row:
    host: str
    stage: str = "waiting"
    job: str = ""
    done: int = 0
    total: int = 0
    failed: int = 0
    status: str = ""
    since: float = field(default_factory=time.monotonic)
    activity: str = ""  # what the harness runs now: "resnet50 Server TEST05"
    printed: float = 0.0  # when plain output last showed the activity


@dataclass(frozen=True)
class NodeStatus:
    """One report of the node's bench wait: what runs and for how long (node clock)."""

    activity: str
    elapsed_s: float


def parse_node_status(stdout: str) -> NodeStatus | None:
    """The bench wait's output (`state=`, `now=<epoch>`, then the harness's status JSON) -> NodeStatus."""
    _, sep, status = stdout.partition("now=")
    stamp, _, body = status.partition("\n")
    if not sep or not body.strip():
        return None  # the harness has not written a status yet
    try:
        now, data = float(stamp), json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    activity = " ".join(str(data[k]) for k in ("task", "scenario", "mode") if data.get(k))
    started = data.get("started")
    elapsed = now - float(started) if isinstance(started, (int, float)) else 0.0
    return NodeStatus(activity, max(0.0, elapsed)) if activity else None


def format_elapsed(seconds: float) -> str:
    """4m10s, 12s, 1h02m: short enough for one progress line."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Thread-safe sink for orchestration updates (ansible events arrive on another thread)."""

    def __init__(self, hosts: list[str], live: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.rows = {h: Row(h) for h in hosts}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live: Any = None
        self._notes: list[str] = []

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(file=self.stream), refresh_per_second=4,
                              get_renderable=self._render, transient=False)  # fmt: skip
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        for line in self._notes:
            print(line, file=self.stream, flush=True)

    # ----- updates ----------------------------------------------------------------------
    def _row(self, host: str) -> Row:
        return self.rows.setdefault(host, Row(host))

    def totals(self, host: str, total: int) -> None:
        with self._lock:
            self._row(host).total = total

    def stage(self, host: str, stage: str) -> None:
        with self._lock:
            row = self._row(host)
            if row.stage == stage:
                return
            row.stage, row.since, row.job = stage, time.monotonic(), ""
        self._plain(f"{host}: {stage}")

    def job_started(self, host: str, job: str) -> None:
        with self._lock:
            row = self._row(host)
            row.stage, row.job, row.since, row.activity = "bench", job, time.monotonic(), ""

    def job_status(self, host: str, status: NodeStatus) -> None:
        """What the node runs now; plain output prints it on a change and every HEARTBEAT_S."""
        now = time.monotonic()
        with self._lock:
            row = self._row(host)
            changed = status.activity != row.activity
            row.activity, row.since = status.activity, now - status.elapsed_s
            if not changed and now - row.printed < HEARTBEAT_S:
                return
            row.printed = now
        self._plain(f"{host} {status.activity} {format_elapsed(status.elapsed_s)}")

    def job_finished(self, host: str, job: str, ok: bool, note: str = "", verdict: str = "") -> None:
        with self._lock:
            row = self._row(host)
            row.done += 1
            row.failed += 0 if ok else 1
            row.job, row.activity = "", ""
        verdict = verdict or ("finished" if ok else "FAILED")
        self._plain(f"{host}: {job} {verdict}{': ' + note if note else ''}")

    def node_failed(self, host: str, stage: str, message: str) -> None:
        with self._lock:
            row = self._row(host)
            row.stage, row.status = stage, "FAILED"
        self._plain(f"{host}: FAILED at {stage}: {message}")

    def note(self, line: str) -> None:
        """A line about the run as a whole (plain output prints it; the live table prints it at the end)."""
        if self.live:
            self._notes.append(line)
        self._plain(line)

    def node_done(self, host: str, status: str) -> None:
        with self._lock:
            row = self._row(host)
            if row.status != "FAILED":
                row.status = status
            row.stage = "done"

    # ----- rendering --------------------------------------------------------------------
    def _plain(self, line: str) -> None:
        if self.live:
            return
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {line}", file=self.stream, flush=True)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"fleet run · {time.monotonic() - self.started:.0f}s", expand=False)
        for col in ("node", "stage", "job", "done", "elapsed", "status"):
            table.add_column(col)
        now = time.monotonic()
        with self._lock:
            for row in self.rows.values():
                table.add_row(
                    row.host,
                    row.stage,
                    row.activity or (row.job.split("/", 1)[-1] if row.job else ""),
                    f"{row.done}/{row.total}" + (f" ({row.failed} failed)" if row.failed else ""),
                    f"{now - row.since:.0f}s",
                    row.status,
                )
        return table


def summary_rows(state: Any) -> list[list[str]]:
    """One row per node x task x scenario: status, metric, validity, accuracy, note."""
    rows = []
    for job in state.jobs.values():
        metric = "" if job.result is None else f"{job.result:.4g} {job.result_unit or ''}".strip()
        acc = "" if job.accuracy is None else f"{job.accuracy:.3f}"
        checks = " ".join(f"{k}:{'PASS' if 'PASS' in v else 'FAIL'}" for k, v in sorted(job.verify.items()))
        note = f"{job.stage}: {job.error}" if job.error else checks
        rows.append([job.host, job.task, job.scenario, job.status, metric, job.validity or "", acc, note])
    return rows


SUMMARY_COLUMNS = ["node", "task", "scenario", "status", "metric", "validity", "accuracy", "note"]


def print_summary(state: Any, stream: TextIO | None = None, rich_table: bool | None = None) -> None:
    """The end-of-run table; plain aligned text when not on a terminal."""
    stream = stream or sys.stdout
    rows = summary_rows(state)
    if rich_table if rich_table is not None else stream.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"run {state.run_id}")
        for col in SUMMARY_COLUMNS:
            table.add_column(col, overflow="fold", no_wrap=col != "note")
        for row in rows:
            style = "red" if row[3] != "ok" else ("yellow" if row[5] not in ("", "VALID") else None)
            table.add_row(*row, style=style)
        Console(file=stream).print(table)
        return
    widths = [
        max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(SUMMARY_COLUMNS)
    ]
    print(f"run {state.run_id}", file=stream)
    for row in [SUMMARY_COLUMNS, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=stream)
