"""Findings of the built-in checker and the thresholds they are judged by."""

from __future__ import annotations

from dataclasses import dataclass, field

from fleet.harness.rules import v3_1 as rules

RULE = "rule"  # breaks a v3.1 rule: the result (or the tree) is not submittable
PERSON = "needs-a-person"  # a systems-json fact no machine can know: set it in the inventory
WARNING = "warning"  # logged only, as by the official checker


@dataclass(frozen=True)
class Finding:
    path: str  # relative to the tree root, "." for the root itself
    rule: str
    message: str
    kind: str = RULE

    def render(self) -> str:
        label = "" if self.kind == RULE else f"{self.kind}: "
        return f"{self.path}: [{self.rule}] {label}{self.message}"


@dataclass(frozen=True)
class Thresholds:
    """The duration and count rules; everything else is the same in every profile."""

    profile: str
    min_duration_ms: int
    min_queries: dict[str, int] = field(default_factory=dict)
    offline_min_samples_per_query: int = rules.OFFLINE_MIN_SAMPLES_PER_QUERY
    check_performance_sample_count: bool = True

    @property
    def relaxed(self) -> bool:
        return self.profile != "submission"


def _full_min_queries() -> dict[str, int]:
    """mlperf.conf's min_query_count, and never fewer than LoadGen's early-stopping minimum."""
    return {
        scen: max(r.min_query_count, rules.EARLY_STOPPING_MIN_QUERIES.get(scen, 0))
        for scen, r in rules.SCENARIO_RULES.items()
        if scen != "Offline"
    } | {"Offline": rules.SCENARIO_RULES["Offline"].checker_min_query_count}


FULL = Thresholds(
    profile="submission", min_duration_ms=rules.MIN_DURATION_MS, min_queries=_full_min_queries()
)
# Smoke runs last seconds on a small QSL: only LoadGen's own early-stopping minimums remain
# (the harness's smoke profile may run longer; the checker does not depend on its choices).
SMOKE = Thresholds(
    profile="smoke",
    min_duration_ms=0,
    min_queries=dict(rules.EARLY_STOPPING_MIN_QUERIES),
    offline_min_samples_per_query=1,
    check_performance_sample_count=False,
)
PROFILES = {"submission": FULL, "smoke": SMOKE}
