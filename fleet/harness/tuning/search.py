"""Search strategies for tuning, independent of how a trial is run.

A trial is a short LoadGen run; here it is just a callable, so the strategies are pure and
unit-tested with synthetic oracles. Two searches matter:

* `search_server_qps`: the highest Server target QPS that stays VALID. Bracketing (grow or
  shrink geometrically until one VALID and one INVALID target are known) then bisection
  between them. The invariant callers and tests rely on: the returned `best` was tried and
  VALID, and `ceiling` (the lowest INVALID target tried above it) was tried and INVALID, so
  the next higher step really fails.
* `search_knobs`: coordinate descent over discrete backend settings (batch size, threads,
  graph optimization level) maximising a measured score. Knobs whose values are ordered
  (batch sizes, thread counts) can be hill-climbed from the incumbent instead of swept, which
  saves the trials a sweep spends far from the optimum.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServerTrial:
    """The outcome of one short Server run at a target QPS."""

    target_qps: float
    valid: bool
    p99_latency_ms: float | None = None
    achieved_qps: float | None = None
    note: str = ""


@dataclass
class ServerSearchResult:
    best: ServerTrial | None  # highest VALID target tried; None if nothing was VALID
    ceiling: ServerTrial | None  # lowest INVALID target above `best`; None if never hit
    recommended_qps: float | None  # best.target_qps reduced by the safety margin
    trials: list[ServerTrial] = field(default_factory=list)
    stopped_by: str = "converged"  # converged | budget | max_trials | floor | hopeless

    def as_dict(self) -> dict[str, Any]:
        return {
            "best": asdict(self.best) if self.best else None,
            "ceiling": asdict(self.ceiling) if self.ceiling else None,
            "recommended_qps": self.recommended_qps,
            "trials": [asdict(t) for t in self.trials],
            "stopped_by": self.stopped_by,
        }


def search_server_qps(
    trial: Callable[[float], ServerTrial],
    start_qps: float,
    *,
    growth: float = 1.5,
    tolerance: float = 0.03,
    safety_margin: float = 0.05,
    max_trials: int = 14,
    budget_s: float | None = None,
    min_qps: float = 0.01,
    hopeless: Callable[[ServerTrial], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ServerSearchResult:
    """Find the highest VALID Server target QPS, starting the bracket at `start_qps`.

    `tolerance` is the relative width (ceiling - best) / best at which bisection stops.
    `safety_margin` lowers the recommendation below the best VALID target (a 10-minute run
    sees more tail latency than a short trial). `hopeless`, asked about each INVALID trial
    while no VALID one is known, ends the search ("hopeless") when a lower target cannot
    help (e.g. single queries already take most of the bound at light load), instead of
    spending the budget on ever longer trials.
    """
    if start_qps <= 0 or not math.isfinite(start_qps):
        raise ValueError(f"start_qps must be a positive number, got {start_qps!r}")
    if growth <= 1.0:
        raise ValueError("growth must be > 1")
    if not 0.0 <= safety_margin < 1.0:
        raise ValueError("safety_margin must be in [0, 1)")

    deadline = None if budget_s is None else clock() + budget_s
    trials: list[ServerTrial] = []
    best: ServerTrial | None = None
    ceiling: ServerTrial | None = None

    def out_of_time() -> str | None:
        if len(trials) >= max_trials:
            return "max_trials"
        if deadline is not None and clock() >= deadline:
            return "budget"
        return None

    def run(qps: float) -> ServerTrial:
        result = trial(qps)
        trials.append(result)
        return result

    def finish(stopped_by: str) -> ServerSearchResult:
        recommended = None if best is None else best.target_qps * (1.0 - safety_margin)
        return ServerSearchResult(best, ceiling, recommended, trials, stopped_by)

    # Bracketing.
    first = run(start_qps)
    if first.valid:
        best = first
        qps = start_qps
        while ceiling is None:
            if (reason := out_of_time()) is not None:
                return finish(reason)
            qps *= growth
            result = run(qps)
            if result.valid:
                best = result
            else:
                ceiling = result
    else:
        ceiling = first
        qps = start_qps
        if hopeless is not None and hopeless(first):
            return finish("hopeless")
        while best is None:
            if (reason := out_of_time()) is not None:
                return finish(reason)
            qps /= growth
            if qps < min_qps:
                return finish("floor")
            result = run(qps)
            if result.valid:
                best = result
            else:
                ceiling = result
                if hopeless is not None and hopeless(result):
                    return finish("hopeless")

    # Bisection between best (VALID) and ceiling (INVALID).
    while (ceiling.target_qps - best.target_qps) / best.target_qps > tolerance:
        if (reason := out_of_time()) is not None:
            return finish(reason)
        mid = (best.target_qps + ceiling.target_qps) / 2.0
        result = run(mid)
        if result.valid:
            best = result
        else:
            ceiling = result
    return finish("converged")


@dataclass(frozen=True)
class KnobTrial:
    """One measured configuration of backend settings."""

    settings: Mapping[str, Any]
    score: float  # higher is better (samples/s, or 1/latency)
    valid: bool = True
    note: str = ""


@dataclass
class KnobSearchResult:
    best: KnobTrial | None
    trials: list[KnobTrial] = field(default_factory=list)
    stopped_by: str = "converged"

    def as_dict(self) -> dict[str, Any]:
        def one(t: KnobTrial) -> dict[str, Any]:
            return {"settings": dict(t.settings), "score": t.score, "valid": t.valid, "note": t.note}

        return {
            "best": one(self.best) if self.best else None,
            "trials": [one(t) for t in self.trials],
            "stopped_by": self.stopped_by,
        }


def search_knobs(
    measure: Callable[[Mapping[str, Any]], KnobTrial],
    space: Mapping[str, Sequence[Any]],
    start: Mapping[str, Any],
    *,
    max_trials: int = 16,
    budget_s: float | None = None,
    min_gain: float = 0.02,
    ordered: Collection[str] = (),
    clock: Callable[[], float] = time.monotonic,
) -> KnobSearchResult:
    """Coordinate descent: vary one knob at a time around the incumbent, keep improvements.

    A candidate replaces the incumbent only when it is VALID and better by `min_gain`
    (relative), so measurement noise does not flip the choice. Each configuration is measured
    at most once. Passes over all knobs repeat until a pass changes nothing.

    Knobs named in `ordered` list their values in order (1, 2, 4, ...): the search measures
    the incumbent's two neighbours and keeps stepping while a step improves, instead of
    measuring every value. An incumbent value missing from the list falls back to a sweep.
    """
    for name, values in space.items():
        if not values:
            raise ValueError(f"knob {name!r} has no candidate values")
    deadline = None if budget_s is None else clock() + budget_s
    seen: dict[tuple[tuple[str, Any], ...], KnobTrial] = {}
    trials: list[KnobTrial] = []

    def key(settings: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted(settings.items()))

    def stop() -> str | None:
        if len(trials) >= max_trials:
            return "max_trials"
        if deadline is not None and clock() >= deadline:
            return "budget"
        return None

    def measured(settings: Mapping[str, Any]) -> KnobTrial:
        k = key(settings)
        if k not in seen:
            result = measure(dict(settings))
            seen[k] = result
            trials.append(result)
        return seen[k]

    incumbent = measured(dict(start))
    best = incumbent if incumbent.valid else None

    def current() -> Mapping[str, Any]:
        return best.settings if best else start

    def consider(name: str, value: Any) -> bool | str:
        """Measure the incumbent with `name` = value; True if it became the incumbent.

        Returns the stop reason instead when a new measurement is needed but not allowed.
        """
        nonlocal best
        settings = {**current(), name: value}
        if key(settings) not in seen and (reason := stop()) is not None:
            return reason
        candidate = measured(settings)
        if candidate.valid and (best is None or candidate.score > best.score * (1.0 + min_gain)):
            best = candidate
            return True
        return False

    changed = True
    while changed:
        changed = False
        for name, values in space.items():
            values = list(values)
            if name in ordered and current().get(name) in values:
                moved = True
                while moved:
                    moved = False
                    i = values.index(current()[name])
                    for j in (i - 1, i + 1):
                        if not 0 <= j < len(values):
                            continue
                        outcome = consider(name, values[j])
                        if isinstance(outcome, str):
                            return KnobSearchResult(best, trials, outcome)
                        if outcome:
                            changed = moved = True
                            break
                continue
            for value in values:
                if current().get(name) == value:
                    continue
                outcome = consider(name, value)
                if isinstance(outcome, str):
                    return KnobSearchResult(best, trials, outcome)
                changed = changed or outcome
    return KnobSearchResult(best, trials, "converged")
