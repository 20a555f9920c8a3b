"""How often the nightly verdict cries wolf, and how fast it sees a real step.

Replays synthetic nightly series with known noise through `fleet.regress.walk`, the code
`fleet history` and `fleet sweep` judge with:

- each night measures `repeats` runs around the night's true level with run-to-run CV c
  (normal), and the night's value is their median, as a sweep stores it;
- the true level moves night to night by a drift of sd d (machine state, page cache, the
  neighbour's load), independent per night;
- null series never step: every confirmed regression or improvement on them is a false alarm,
  counted per series-night (the nights that could have alarmed, after the first baseline);
- step series drop throughput by 5 % or 10 % from night STEP_AT on: the detection delay is
  the nights from the step's first night to its confirmation, inclusive (2 is the best the
  two-night rule allows).

For comparison, the `before` column is the rule fleet used before: one run a
night, flagged when it moves beyond the threshold against the median of the last five, from
the first earlier night on.

Prints one line per noise setting and, last,
`nightly_verdicts false_alarm_rate=F detect_nights_10pct=D`: F over every null series-night
of every setting, D the 95th-percentile delay of a 10 % step at 2 % CV (nights; inf if more
than 5 % of such steps are never confirmed).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet.regress import IMPROVEMENT, REGRESSION, TOO_NOISY, Policy, walk

NIGHTS = 60
STEP_AT = 30


@dataclass(frozen=True)
class Noise:
    cv: float  # run-to-run coefficient of variation
    drift: float  # night-to-night sd of the true level
    repeats: int


def nights(rng: np.random.Generator, noise: Noise, step: float = 0.0) -> list[float]:
    level = 100.0 * (1 + noise.drift * rng.standard_normal(NIGHTS))
    if step:
        level[STEP_AT:] *= 1 - step
    runs = level[:, None] * (1 + noise.cv * rng.standard_normal((NIGHTS, noise.repeats)))
    return [float(v) for v in np.median(runs, axis=1)]


def null_stats(rng: np.random.Generator, noise: Noise, series: int, policy: Policy) -> tuple[int, int, int]:
    """(false alarms, judged series-nights, too-noisy series-nights) over `series` null series."""
    alarms = judged = noisy = 0
    for _ in range(series):
        states = [s.state for s in walk(nights(rng, noise), policy, lower_is_better=False)]
        judged += len(states) - policy.min_runs
        alarms += sum(s in (REGRESSION, IMPROVEMENT) for s in states)
        noisy += sum(s == TOO_NOISY for s in states)
    return alarms, judged, noisy


def before_rate(rng: np.random.Generator, noise: Noise, series: int, threshold: float) -> float:
    """False alarms per series-night of the old rule (one run a night, median of the last 5)."""
    single = Noise(noise.cv, noise.drift, 1)
    alarms = judged = 0
    for _ in range(series):
        values = nights(rng, single)
        for i in range(1, NIGHTS):
            base = float(np.median(values[max(0, i - 5) : i]))
            alarms += abs(values[i] / base - 1) > threshold
            judged += 1
    return alarms / judged


def delays(rng: np.random.Generator, noise: Noise, step: float, series: int, policy: Policy) -> list[float]:
    """Nights from the step to its confirmed regression, inclusive; inf when never confirmed."""
    out = []
    for _ in range(series):
        steps = walk(nights(rng, noise, step), policy, lower_is_better=False)
        hit = next((i for i in range(STEP_AT, NIGHTS) if steps[i].state == REGRESSION), None)
        out.append(math.inf if hit is None else hit - STEP_AT + 1)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=400, help="series per noise setting (default 400)")
    parser.add_argument("--repeats", type=int, default=3, help="measured runs a night (default 3)")
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sigmas", type=float, default=Policy().sigmas, help="the bar in spreads")
    parser.add_argument("--min-runs", type=int, default=Policy().min_runs)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    policy = Policy(threshold=args.threshold, sigmas=args.sigmas, min_runs=args.min_runs)
    total_alarms = total_judged = 0
    d10 = math.inf
    print(f"{'cv':>4} {'drift':>5} {'rep':>3}  {'false alarms':>18}  {'before':>6}  {'too-noisy':>9}  "
          f"{'5% step p50/p95 (found)':>24}  {'10% step p50/p95 (found)':>25}")  # fmt: skip
    for cv in (0.01, 0.02, 0.03, 0.05):
        for drift in (0.005, 0.01, 0.02):
            noise = Noise(cv, drift, args.repeats)
            alarms, judged, noisy = null_stats(rng, noise, args.series, policy)
            before = before_rate(rng, noise, args.series, args.threshold)
            total_alarms += alarms
            total_judged += judged
            cells = []
            for step in (0.05, 0.10):
                found = delays(rng, noise, step, args.series, policy)
                hit = [d for d in found if d != math.inf]
                med = float(np.median(hit)) if hit else math.inf
                cells.append(f"{med:.0f}/{p95(found):.0f} ({len(hit) / len(found):.0%})")
                if step == 0.10 and cv == 0.02 and drift == 0.01:
                    d10 = p95(found)
            print(f"{cv:>4.0%} {drift:>5.1%} {args.repeats:>3}  {alarms:>6} / {judged:<6} "
                  f"{alarms / judged:>5.2%}  {before:>6.1%}  {noisy / judged:>9.0%}  "
                  f"{cells[0]:>24}  {cells[1]:>25}")
    rate = total_alarms / total_judged
    print(f"nightly_verdicts false_alarm_rate={rate:.4f} detect_nights_10pct={d10:g}")


if __name__ == "__main__":
    main()
