"""Nightly verdicts over the results history: a regression only when the series' own noise and
the lab's threshold both say so, and only once a second night confirms it.

Each (system, task, scenario) is a series of nights: one value per run (the median of the
night's measured repeats, else its single result), kept apart by profile and asset kind (a
synthetic smoke run is never compared with a real one). The newest night gets one state:

- `no-baseline`: fewer than `min_runs` clean (ok, VALID) nights since the series began or
  since its last confirmed change; the verdict says how many more it needs.
- `ok`: within the bar of the baseline (median of the last `baseline_runs` clean nights).
- `too-noisy`: within the bar, but the bar is wider than the threshold: the smallest change
  this series can tell from its noise, `NOISE_SIGMAS` x its night-to-night spread, is above
  what the lab asked to catch. The verdict says that figure.
- `suspect`: past the bar for the first night. It is left out of the baseline and waits.
- `regression` / `improvement`: the night after a suspect one is past the same bar in the
  same direction: a confirmed step. The suspect night is where it started, and those two
  nights start a new baseline. A suspect night followed by a night inside the bar was noise
  and joins the baseline.

The bar is max(threshold, NOISE_SIGMAS x spread), where spread is the baseline nights'
relative standard deviation estimated robustly (1.4826 x median absolute deviation / median,
so one disturbed night does not widen it). NOISE_SIGMAS, DEFAULT_MIN_RUNS and the two-night
confirmation come from benchmarks/nightly_verdicts.py: over synthetic series with run-to-run
CV 1-5 % and night-to-night drift they keep confirmed false alarms under 1 % of series-nights
and confirm a 10 % step at 2 % CV on its second night (docs/nightly.md has the figures).

Direction comes from the scenario's metric: throughput (Offline, Server) down and latency
(SingleStream, MultiStream) up are regressions. Outcome flags are judged per night as before:
a job that broke or keeps failing, a result that turned INVALID, accuracy under the v3.1
target and failed compliance tests; beside a flag or a confirmed step, the software-version
and host-facts changes of the series at that night are named as likely causes.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet.harness.rules.v3_1 import RESULT_KEYS
from fleet.history.store import ResultRow

DEFAULT_THRESHOLD = 0.05
DEFAULT_BASELINE_RUNS = 10  # the baseline: median of at most this many recent clean nights
DEFAULT_MIN_RUNS = 5  # fewer clean nights than this in the current segment: no-baseline
MIN_MIN_RUNS = 3  # a spread needs three nights at least
NOISE_SIGMAS = 3.0  # the bar in units of the series' night-to-night spread
MAD_TO_SD = 1.4826  # median absolute deviation -> standard deviation for normal noise
EXIT_REGRESSION = 3  # exit status of `fleet history` / `fleet sweep` when something is flagged

OK = "ok"
REGRESSION = "regression"
SUSPECT = "suspect"
IMPROVEMENT = "improvement"
TOO_NOISY = "too-noisy"
NO_BASELINE = "no-baseline"
NO_VALUE = "-"  # the night has no clean value to judge (failed or INVALID): its flags say why
STATES = (REGRESSION, SUSPECT, IMPROVEMENT, TOO_NOISY, NO_BASELINE, NO_VALUE, OK)  # tables list them so


@dataclass(frozen=True)
class Policy:
    """The lab's threshold, the baseline window and the clean nights a verdict needs."""

    threshold: float = DEFAULT_THRESHOLD
    baseline_runs: int = DEFAULT_BASELINE_RUNS
    min_runs: int = DEFAULT_MIN_RUNS
    sigmas: float = NOISE_SIGMAS  # fixed for labs; benchmarks/nightly_verdicts.py varies it


@dataclass(frozen=True)
class Flag:
    kind: str  # invalid | valid-again | broke | failing | fixed | accuracy | compliance
    regression: bool
    message: str


@dataclass(frozen=True)
class Step:
    """What the night walk says about one night of a series."""

    state: str
    baseline: float | None = None
    members: tuple[int, ...] = ()  # indices of the nights whose median is the baseline
    spread: float | None = None  # relative night-to-night standard deviation of those nights
    bar: float | None = None  # relative change that counts: max(threshold, NOISE_SIGMAS x spread)
    change: float | None = None  # value / baseline - 1
    since: int | None = None  # suspect, regression, improvement: the night the step began
    need: int = 0  # no-baseline: clean nights still missing
    restarted: bool = False  # no-baseline: the segment began at a confirmed step


@dataclass(frozen=True)
class _Baseline:
    value: float
    members: tuple[int, ...]
    spread: float
    bar: float


def _baseline(segment: list[int], values: Sequence[float | None], policy: Policy) -> _Baseline | None:
    members = tuple(segment[-policy.baseline_runs :])
    if len(members) < policy.min_runs:
        return None
    vals = [float(values[i]) for i in members]  # type: ignore[arg-type]
    median = statistics.median(vals)
    if median <= 0:
        return None
    spread = MAD_TO_SD * statistics.median(abs(v - median) for v in vals) / median
    return _Baseline(median, members, spread, max(policy.threshold, policy.sigmas * spread))


def _side(change: float, bar: float) -> int:
    return 1 if change > bar else -1 if change < -bar else 0


def walk(values: Sequence[float | None], policy: Policy, lower_is_better: bool) -> list[Step]:
    """One Step per night, oldest first; None marks a night with no clean value (skipped)."""
    worse = 1 if lower_is_better else -1
    segment: list[int] = []  # clean nights since the series began or its last confirmed step
    restarted = False
    pending: tuple[int, int, _Baseline] | None = None  # a suspect night, its side, its baseline
    steps: list[Step] = []
    for i, value in enumerate(values):
        if value is None:
            steps.append(Step(NO_VALUE))
            continue
        if pending is not None:
            first, side, base = pending
            pending = None
            change = value / base.value - 1
            if _side(change, base.bar) == side:
                state = REGRESSION if side == worse else IMPROVEMENT
                steps.append(Step(state, base.value, base.members, base.spread, base.bar, change, first))
                segment, restarted = [first, i], True
                continue
            segment.append(first)  # the suspect night was noise after all
        base = _baseline(segment, values, policy)
        if base is None:
            steps.append(Step(NO_BASELINE, need=policy.min_runs - len(segment), restarted=restarted))
            segment.append(i)
            continue
        change = value / base.value - 1
        side = _side(change, base.bar)
        if side:
            pending = (i, side, base)
            steps.append(Step(SUSPECT, base.value, base.members, base.spread, base.bar, change, since=i))
            continue
        state = TOO_NOISY if base.bar > policy.threshold else OK
        steps.append(Step(state, base.value, base.members, base.spread, base.bar, change))
        segment.append(i)
    return steps


@dataclass(frozen=True)
class Verdict:
    """One (system, task, scenario) of the judged run against its own past."""

    system: str
    task: str
    scenario: str
    run_id: str
    time: str
    metric: str | None
    value: float | None  # the night's value: median of its measured repeats, else its result
    validity: str | None
    synthetic: bool  # measured on synthetic assets: a trend, never a real result
    state: str = NO_VALUE
    baseline: float | None = None
    baseline_n: int = 0
    baseline_run_ids: tuple[str, ...] = ()
    change: float | None = None  # (value - baseline) / baseline
    spread: float | None = None  # night-to-night relative standard deviation of the baseline
    bar: float | None = None
    repeats: int = 0  # measured runs behind `value` (0: one result, no repeats)
    repeat_cv: float | None = None  # their run-to-run coefficient of variation
    since_run: str | None = None  # the night a suspect or confirmed step began
    shared_with: str | None = None  # nodes that shared this node's hardware while it measured
    lower_is_better: bool = False
    message: str = ""
    flags: tuple[Flag, ...] = ()
    causes: tuple[str, ...] = ()  # software / host changes at the night it began

    @property
    def regression(self) -> bool:
        return self.state == REGRESSION or any(f.regression for f in self.flags)

    @property
    def improvement(self) -> bool:
        good_flag = any(not f.regression for f in self.flags)
        return not self.regression and (self.state == IMPROVEMENT or good_flag)


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

    def count(self, state: str) -> int:
        return sum(v.state == state for v in self.verdicts)


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


def night_value(row: ResultRow) -> float | None:
    """The value a night contributes: the median of its measured repeats, else its result."""
    repeats = repeat_values(row)
    return statistics.median(repeats) if repeats else row.value


def repeat_values(row: ResultRow) -> list[float]:
    return [float(v) for v in json.loads(row.repeat_values)] if row.repeat_values else []


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
    verdicts.sort(key=lambda v: (not v.regression, STATES.index(v.state), v.task, v.scenario, v.system))
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
    first = perf or now[0]
    fields: dict[str, Any] = {}
    causes: tuple[str, ...] = ()
    if perf is not None:
        history = [p for p in past if p.mode == "performance"]
        prev = history[-1] if history else None
        nights = [p for p in history if p.profile == perf.profile and p.synthetic == perf.synthetic] + [perf]
        # None: no clean night (failed, missing or INVALID), left out of every baseline
        values = [night_value(r) if r.outcome == "ok" and r.validity == "VALID" else None for r in nights]
        step = walk(values, policy, lower)[-1]
        fields = _step_fields(step, nights, policy, lower, perf.metric)
        if prev is not None and perf.validity and prev.validity and perf.validity != prev.validity:
            broke = perf.validity != "VALID"
            flags.append(Flag("invalid" if broke else "valid-again", broke,
                              f"result {prev.validity} -> {perf.validity}"))  # fmt: skip
        if step.since is not None and step.state in (REGRESSION, IMPROVEMENT, SUSPECT) and step.members:
            causes = _causes(nights[step.members[-1]], nights[step.since])
        elif flags and prev is not None:
            causes = _causes(prev, perf)
        repeats = repeat_values(perf)
        fields.update(
            value=night_value(perf), repeats=len(repeats), shared_with=perf.shared_with,
            repeat_cv=perf.repeat_cv,
        )  # fmt: skip
    return Verdict(
        system=system, task=task, scenario=scenario, run_id=first.run_id, time=first.time,
        metric=perf.metric if perf else None, validity=perf.validity if perf else None,
        synthetic=first.synthetic, lower_is_better=lower, flags=tuple(flags), causes=causes, **fields,
    )  # fmt: skip


def _step_fields(
    step: Step, nights: list[ResultRow], policy: Policy, lower: bool, metric: str | None
) -> dict[str, Any]:
    what = "latency" if lower else (metric or "throughput")
    out: dict[str, Any] = {"state": step.state, "baseline": step.baseline, "baseline_n": len(step.members),
                 "baseline_run_ids": tuple(nights[i].run_id for i in step.members), "change": step.change,
                 "spread": step.spread, "bar": step.bar,
                 "since_run": nights[step.since].run_id if step.since is not None else None}  # fmt: skip
    base = f"the baseline of {len(step.members)} nights" if step.members else ""
    noise = f"{policy.sigmas:g} x its night-to-night spread {step.spread or 0:.1%}"
    if step.state == NO_BASELINE:
        have, more = policy.min_runs - step.need + 1, step.need - 1  # tonight counts
        out["message"] = (f"clean night {have} of the {policy.min_runs} a verdict needs"
                          f"{' since the last confirmed change' if step.restarted else ''}: "
                          + (f"{more} more" if more else "the next night gets one"))  # fmt: skip
    elif step.state == NO_VALUE:
        out["message"] = "no clean value tonight"
    elif step.state == SUSPECT:
        out["message"] = (f"{what} {step.change:+.1%} vs {base}, past the bar of {step.bar:.1%} for the "
                          "first night: the next night confirms or drops it")  # fmt: skip
    elif step.state in (REGRESSION, IMPROVEMENT):
        out["message"] = (f"{what} {step.change:+.1%} vs {base} on the second night running "
                          f"(bar {step.bar:.1%}), since run {out['since_run']}: a new baseline starts there")
    elif step.state == TOO_NOISY:
        out["message"] = (f"cannot tell a {policy.threshold:.0%} change: the smallest this series can, "
                          f"{noise} = {step.bar:.1%}, is above the threshold; measure more repeats a night "
                          "or quieten the node")  # fmt: skip
    else:
        out["message"] = f"{what} {step.change:+.1%} vs {base}, inside the bar of {step.bar:.1%}"
    return out


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
