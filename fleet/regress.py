"""Regression verdicts over the results history: what got slower, what broke, what improved.

For every (system, task, scenario) in the newest run, the newest performance value is compared
with a robust baseline, the median of the last N valid earlier runs of the same profile and
asset kind (a synthetic smoke run is never compared with a real one). Direction comes from the
scenario's metric in the rules table: throughput (Offline, Server) drops are regressions,
latency (SingleStream, MultiStream) rises are. Validity changes, failing jobs, accuracy under
the v3.1 target and failed compliance tests are flagged too, and a software-version or
host-facts change on the same series is named beside the flag, as the likely cause.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleet.harness.rules.v3_1 import RESULT_KEYS
from fleet.history.store import ResultRow

DEFAULT_THRESHOLD = 0.05
DEFAULT_BASELINE_RUNS = 5
EXIT_REGRESSION = 3  # exit status of `fleet history` / `fleet sweep` when something is flagged


@dataclass(frozen=True)
class Policy:
    """How far a value may move before it is flagged, and how many runs make the baseline."""

    threshold: float = DEFAULT_THRESHOLD
    baseline_runs: int = DEFAULT_BASELINE_RUNS


@dataclass(frozen=True)
class Flag:
    kind: str  # slower | faster | invalid | valid-again | broke | failing | fixed | accuracy | compliance
    regression: bool
    message: str


@dataclass(frozen=True)
class Verdict:
    """One (system, task, scenario) of the judged run against its own past."""

    system: str
    task: str
    scenario: str
    run_id: str
    time: str
    metric: str | None
    value: float | None
    validity: str | None
    synthetic: bool  # measured on synthetic assets: a trend, never a real result
    baseline: float | None
    baseline_n: int
    change: float | None  # (value - baseline) / baseline
    lower_is_better: bool
    flags: tuple[Flag, ...] = ()
    causes: tuple[str, ...] = ()  # software / host changes since the previous run of the series

    @property
    def regression(self) -> bool:
        return any(f.regression for f in self.flags)

    @property
    def improvement(self) -> bool:
        return any(not f.regression for f in self.flags) and not self.regression


@dataclass(frozen=True)
class Report:
    run_id: str | None
    policy: Policy
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.regression)

    @property
    def improvements(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.improvement)


def parse_threshold(value: str | float) -> float:
    """`"5%"` or `0.05` -> 0.05; ValueError (with a sentence) for anything else."""
    text = str(value).strip()
    try:
        fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{value!r}: give a percentage such as 5% or a fraction such as 0.05") from None
    if not 0 < fraction < 1:
        raise ValueError(f"{value!r}: must lie between 0% and 100%")
    return fraction


def lower_is_better(scenario: str) -> bool:
    """Latency scenarios report milliseconds (lower is better), the others a rate."""
    return RESULT_KEYS[scenario][1].startswith("Latency")


def judge(rows: Sequence[ResultRow], policy: Policy = Policy(), run_id: str | None = None) -> Report:
    """Verdicts for every series of `run_id` (default: the newest run); rows oldest run first."""
    order = list(dict.fromkeys(r.run_id for r in rows))
    if not order:
        return Report(run_id=None, policy=policy)
    target = run_id or order[-1]
    if target not in order:
        return Report(run_id=target, policy=policy)
    earlier_runs = set(order[: order.index(target)])
    series: dict[tuple[str, str, str], list[ResultRow]] = {}
    for row in rows:
        if row.run_id == target or row.run_id in earlier_runs:
            series.setdefault((row.system, row.task, row.scenario), []).append(row)
    verdicts = []
    for key, members in series.items():
        now = [r for r in members if r.run_id == target]
        if now:
            past = [r for r in members if r.run_id != target]
            verdicts.append(_judge_series(key, now, past, policy))
    verdicts.sort(key=lambda v: (not v.regression, v.task, v.scenario, v.system))
    return Report(run_id=target, policy=policy, verdicts=tuple(verdicts))


def _judge_series(
    key: tuple[str, str, str], now: list[ResultRow], past: list[ResultRow], policy: Policy
) -> Verdict:
    system, task, scenario = key
    lower = lower_is_better(scenario) if scenario in RESULT_KEYS else False
    flags: list[Flag] = []
    for row in now:
        flags.extend(_outcome_flags(row, [p for p in past if p.mode == row.mode]))
    perf = next((r for r in now if r.mode == "performance"), None)
    baseline = None
    pool: list[float] = []
    change = None
    prev = None
    if perf is not None:
        history = [p for p in past if p.mode == "performance"]
        if perf.outcome == "ok":
            history = [p for p in history if p.profile == perf.profile and p.synthetic == perf.synthetic]
        prev = history[-1] if history else None
        pool = [p.value for p in history if _valid(p) and p.value is not None][-policy.baseline_runs :]
        if pool:
            baseline = statistics.median(pool)
        if baseline and perf.value is not None:
            change = (perf.value - baseline) / baseline
            flags.extend(_value_flags(change, lower, policy.threshold, perf.metric))
        if prev is not None and perf.validity and prev.validity and perf.validity != prev.validity:
            broke = perf.validity != "VALID"
            flags.append(
                Flag(
                    "invalid" if broke else "valid-again",
                    broke,
                    f"result {prev.validity} -> {perf.validity}",
                )
            )
    causes = _causes(prev, perf) if flags and perf is not None and prev is not None else ()
    first = perf or now[0]
    return Verdict(
        system=system, task=task, scenario=scenario, run_id=first.run_id, time=first.time,
        metric=perf.metric if perf else None, value=perf.value if perf else None,
        validity=perf.validity if perf else None, synthetic=first.synthetic, baseline=baseline,
        baseline_n=len(pool),
        change=change, lower_is_better=lower, flags=tuple(flags), causes=causes,
    )  # fmt: skip


def _valid(row: ResultRow) -> bool:
    return row.outcome == "ok" and row.validity == "VALID"


def _value_flags(change: float, lower: bool, threshold: float, metric: str | None) -> list[Flag]:
    worse = change > threshold if lower else change < -threshold
    better = change < -threshold if lower else change > threshold
    what = "latency" if lower else (metric or "throughput")
    if worse:
        return [Flag("slower", True, f"{what} {change:+.1%} vs baseline (threshold {threshold:.0%})")]
    if better:
        return [Flag("faster", False, f"{what} {change:+.1%} vs baseline")]
    return []


def _outcome_flags(row: ResultRow, past: list[ResultRow]) -> list[Flag]:
    prev = past[-1] if past else None
    label = row.mode
    flags: list[Flag] = []
    if row.outcome != "ok":
        was_ok = prev is None or prev.outcome == "ok"
        reason = f": {row.error}" if row.error else ""
        kind = "broke" if was_ok else "failing"
        flags.append(Flag(kind, True, f"{label} {row.outcome}{reason}"))
        return flags
    if prev is not None and prev.outcome != "ok":
        flags.append(Flag("fixed", False, f"{label} ok again (was {prev.outcome})"))
    if row.accuracy is not None and row.accuracy_target is not None and row.accuracy < row.accuracy_target:
        flags.append(
            Flag("accuracy", True, f"accuracy {row.accuracy:.4g} below target {row.accuracy_target:.4g}")
        )
    if row.verify is not None and row.verify != "TEST PASS":
        flags.append(Flag("compliance", True, f"{label} {row.verify}"))
    return flags


def _causes(prev: ResultRow, now: ResultRow) -> tuple[str, ...]:
    causes = []
    if prev.versions_digest != now.versions_digest:
        diff = _dict_diff(prev.versions, now.versions)
        if diff:
            causes.append("software changed: " + diff)
    if prev.host_digest != now.host_digest:
        diff = _dict_diff(prev.host_facts, now.host_facts)
        if diff:
            causes.append("host changed: " + diff)
    return tuple(causes)


def _dict_diff(before_json: str, after_json: str) -> str:
    before, after = json.loads(before_json), json.loads(after_json)
    if not before or not after:
        return ""
    keys = sorted(set(before) | set(after))
    parts = [f"{k} {before.get(k)} -> {after.get(k)}" for k in keys if before.get(k) != after.get(k)]
    return ", ".join(parts)
