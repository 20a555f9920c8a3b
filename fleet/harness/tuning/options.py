"""Tuning options (no heavy imports: the harness CLI builds its parser from the defaults)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleet.harness.errors import HarnessError

# How a node's budget is shared between the scenarios it tunes: the Server target search
# needs several runs of at least 459 queries each, the others one calibration run.
SCENARIO_WEIGHT = {"Server": 2.0, "Offline": 1.0, "SingleStream": 1.0, "MultiStream": 1.0}


def budget_shares(budget_s: float, scenarios: Sequence[str]) -> dict[str, float]:
    """Seconds per scenario, by SCENARIO_WEIGHT."""
    total = sum(SCENARIO_WEIGHT.get(s, 1.0) for s in scenarios) or 1.0
    return {s: budget_s * SCENARIO_WEIGHT.get(s, 1.0) / total for s in scenarios}


@dataclass(frozen=True)
class TuneOptions:
    budget_s: float = 120.0  # per scenario
    safety_margin: float = 0.05
    trial_s: float = 1.0  # LoadGen min_duration of a knob or Server trial
    stable_s: float = 2.0  # min_duration of the calibration run that sets Offline/latency targets
    tolerance: float = 0.05  # Server bisection stops at this relative width
    max_trials: int = 24  # per search

    def check(self) -> None:
        if not self.budget_s > 0:
            raise HarnessError("--budget-s must be positive")
        if not 0 <= self.safety_margin < 1:
            raise HarnessError("--safety-margin must be in [0, 1)")
        if not (self.trial_s > 0 and self.stable_s > 0 and self.tolerance > 0 and self.max_trials >= 1):
            raise HarnessError("--trial-s, --stable-s and --tolerance must be positive")
