"""Per-scenario run plan: batch size and the LoadGen expectations, from tuning or measurement.

Tuning values (spec.json / CLI flags) win; whatever is missing is measured on the node by
the Calibrator and scaled by the profile's margins (rules/v3_1.py PROFILES). The plan becomes
the run's user.conf, so the files next to the results say what LoadGen was told.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fleet.harness.calibrate import Calibrator
from fleet.harness.loadgen_conf import fmt
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning
from fleet.harness.tasks.base import Task

BATCH_LADDER = (1, 2, 4, 8, 16, 32, 64, 128)
# Offline starts its climb here: smaller batches never win on throughput.
OFFLINE_FIRST_BATCH = 4
# Server: a batch may take at most this share of the latency bound (a sample that arrives as
# a batch starts waits for it and then for its own; the tuner uses the same share).
SERVER_BATCH_SHARE_OF_BOUND = 0.25
# A Server performance run whose latency failed the bound is run once more at this share of
# its target (replan_after).
SERVER_RETRY_SHARE = 0.75
# Tries after the first: a Server retry (or audit) is another whole min_duration run, so one;
# a run that ran out of samples before min_duration lasted less than that, and its rate was
# measured on a short run (a few samples' fixed costs weigh in it): each retry measures a
# longer one, so a few are cheap and converge.
SERVER_RETRIES = 1
SHORT_RUN_RETRIES = 3


def retries_for(scenario: str, audit: bool) -> int:
    """How many times an INVALID mode of `scenario` may be run again (replan_after says how)."""
    return SERVER_RETRIES if audit or scenario == "Server" else SHORT_RUN_RETRIES


@dataclass
class ScenarioPlan:
    scenario: str
    batch_size: int  # Offline batch, Server max batch, 1 for SingleStream, per-query batch for MultiStream
    server_timeout_s: float = 0.0
    # conf key -> value for `<model>.<scenario>.<key>` lines of user.conf
    conf: dict[str, float] = field(default_factory=dict)
    # Why no run of this scenario can be VALID on this node (None: it can be).
    infeasible: str | None = None
    # The profile's query count cut to fit its max_run_s (None: not cut), and what that means.
    min_query_count: int | None = None
    bounded: str | None = None
    # The measurement the plan's expectation came from (calibrate.Point.as_dict; None: tuning).
    calibration: dict[str, Any] | None = None


def _ladder(task: Task, backend: object, first: int = 1) -> list[int]:
    cap = min(task.max_batch_size or BATCH_LADDER[-1], getattr(backend, "max_useful_batch", BATCH_LADDER[-1]))
    ladder = [b for b in BATCH_LADDER if first <= b <= cap]
    return ladder or [min(cap, first)]


def plan_scenario(task: Task, scenario: str, profile: rules.Profile, tuning: Tuning,
                  calibrator: Calibrator) -> ScenarioPlan:
    """The scenario's plan, its query count cut to the profile's max_run_s (see bound_run)."""
    plan = _plan(task, scenario, profile, tuning, calibrator)
    bound_run(plan, profile)
    return plan


def query_seconds(plan: ScenarioPlan, profile: rules.Profile) -> float | None:
    """About how long one query takes at the plan's pace (None: Offline, one query)."""
    if plan.scenario == "Server":
        return 1.0 / plan.conf["target_qps"] if plan.conf.get("target_qps") else None
    if plan.scenario in ("SingleStream", "MultiStream"):
        # target_latency is the measured latency x latency_margin: undo the margin.
        return plan.conf["target_latency"] / 1e3 / profile.latency_margin
    return None


def bound_run(plan: ScenarioPlan, profile: rules.Profile) -> None:
    """Cut the run's query count so it takes about profile.max_run_s, and say what that costs.

    Server's early stopping needs 459 queries: at 0.8 QPS that is 9.5 minutes. A smoke run
    checks the pipeline in a bounded time instead; fewer queries than LoadGen's early-stopping
    minimum make the result INVALID, which `bounded` says in advance.
    """
    per_query = query_seconds(plan, profile)
    if profile.max_run_s is None or per_query is None:
        return
    count = profile.min_query_count.get(plan.scenario, rules.SCENARIO_RULES[plan.scenario].min_query_count)
    if count * per_query <= profile.max_run_s:
        return
    cut = max(1, int(profile.max_run_s / per_query))
    plan.min_query_count = cut
    plan.bounded = (f"{profile.name} profile: {count} {plan.scenario} queries at this node's pace "
                    f"({per_query:.3g} s each) take {count * per_query:.0f} s, cut to {cut} to stay within "
                    f"{profile.max_run_s:g} s")
    need = rules.EARLY_STOPPING_MIN_QUERIES.get(plan.scenario, 0)
    if cut < need:
        plan.bounded += (f"; LoadGen's early stopping needs {need} to judge the latency percentile, "
                         "so the result is INVALID by design")


def replan_after(plan: ScenarioPlan, detail: Mapping[str, Any],
                 profile: rules.Profile) -> tuple[ScenarioPlan, str] | None:
    """A plan for one more try after an INVALID performance run, from what that run measured.

    Calibration measures a node as it was for a moment; a lab whose nodes share CPUs (VMs on
    one host) changes under it. The run itself says what went wrong:
    - Offline ran out of samples before min_duration (the node was faster than measured): the
      expected QPS becomes the run's own samples/s x the profile's margin;
    - SingleStream/MultiStream ran out of queries before min_duration: the expected latency
      becomes the run's mean x the margin;
    - Server's latency percentile failed (early stopping): the target steps down to
      SERVER_RETRY_SHARE of itself.
    None when nothing a retry can change explains it (a smoke run cut short by design, say).
    """
    if plan.bounded:
        return None
    conf = dict(plan.conf)
    if plan.scenario == "Server":
        if detail.get("early_stopping_met") is not False or not conf.get("target_qps"):
            return None
        old = conf["target_qps"]
        conf["target_qps"] = old * SERVER_RETRY_SHARE
        why = f"its latency percentile failed at {old:.4g} QPS: once more at {conf['target_qps']:.4g} QPS"
    elif detail.get("result_min_duration_met") is False:
        if plan.scenario == "Offline":
            measured = float(detail.get("result_samples_per_second") or 0)
            old = conf.get("target_qps", 0.0)
            if measured * profile.offline_qps_margin <= old:
                return None
            conf["target_qps"] = measured * profile.offline_qps_margin
            why = (f"it ran out of samples before min_duration (expected {old:.4g}, ran {measured:.4g} "
                   f"samples/s): again expecting {conf['target_qps']:.4g}")
        else:
            mean_ms = float(detail.get("result_mean_latency_ns") or 0) / 1e6
            old = conf.get("target_latency", 0.0)
            if not mean_ms or mean_ms * profile.latency_margin >= old:
                return None
            conf["target_latency"] = mean_ms * profile.latency_margin
            why = (f"it ran out of queries before min_duration (expected {old:.4g} ms, measured "
                   f"{mean_ms:.4g} ms): again expecting {conf['target_latency']:.4g} ms")
    else:
        return None
    return replace(plan, conf=conf), why


def _plan(task: Task, scenario: str, profile: rules.Profile, tuning: Tuning,
          calibrator: Calibrator) -> ScenarioPlan:
    model = rules.MODELS[task.rules_model]
    cap = task.max_batch_size
    if scenario == "SingleStream":
        plan = ScenarioPlan(scenario, 1)
        latency_ms = tuning.singlestream_expected_latency_ms
        if latency_ms is None:
            point = calibrator.measure(1)
            latency_ms = point.latency_s * 1e3 * profile.latency_margin
            plan.calibration = point.as_dict()
        plan.conf["target_latency"] = latency_ms
        return plan
    if scenario == "MultiStream":
        spq = rules.SCENARIO_RULES["MultiStream"].samples_per_query
        batch = min(spq, cap or spq, tuning.batch_size or spq)
        plan = ScenarioPlan(scenario, batch)
        latency_ms = tuning.multistream_expected_latency_ms
        if latency_ms is None:
            point = calibrator.measure(batch)
            latency_ms = point.latency_s * math.ceil(spq / batch) * 1e3 * profile.latency_margin
            plan.calibration = point.as_dict()
        plan.conf["target_latency"] = latency_ms
        return plan
    if scenario == "Offline":
        batch = tuning.batch_size
        if batch is None:
            batch = calibrator.best_batch(_ladder(task, calibrator.backend, OFFLINE_FIRST_BATCH)).batch
        plan = ScenarioPlan(scenario, min(batch, cap or batch))
        qps = tuning.offline_expected_qps
        if qps is None:
            point = calibrator.measure(plan.batch_size)
            qps = point.throughput * profile.offline_qps_margin
            plan.calibration = point.as_dict()
        plan.conf["target_qps"] = qps
        return plan
    if scenario == "Server":
        bound_s = (model.server_latency_ns or 0) / 1e9
        batch = tuning.server_max_batch or tuning.batch_size
        if batch is None:
            limit = bound_s * SERVER_BATCH_SHARE_OF_BOUND if bound_s else None
            batch = calibrator.best_batch(_ladder(task, calibrator.backend), max_latency_s=limit).batch
        plan = ScenarioPlan(scenario, min(batch, cap or batch))
        if tuning.server_batch_timeout_ms is not None:
            plan.server_timeout_s = tuning.server_batch_timeout_ms / 1e3
        qps = tuning.server_target_qps
        if qps is None:
            # From one-sample throughput: the batcher's bigger batches are then headroom for
            # bursts and for a node that slows down, not part of the expected load.
            one = calibrator.measure(1)
            qps = one.throughput * profile.server_utilization
            plan.calibration = one.as_dict()
            if bound_s and one.latency_s > bound_s:
                # The median alone is over the bound, so the p99 that early stopping judges is too.
                plan.infeasible = (f"one sample takes {one.latency_s * 1e3:.1f} ms (median as measured), "
                                   f"over the {bound_s * 1e3:g} ms Server latency bound: no Server run "
                                   "can be VALID on this node")
        plan.conf["target_qps"] = qps
        return plan
    raise ValueError(scenario)


def user_conf_text(task: Task, scenario: str, profile: rules.Profile, plan: ScenarioPlan,
                   performance_sample_count: int | None) -> str:
    """The user.conf of one run: the profile's reductions and the plan's expectations."""
    key = rules.MODELS[task.rules_model].loadgen_key
    lines = [f"# user.conf written by fleet.harness: profile {profile.name}, {scenario}",
             "# (LoadGen expectations measured on this node or given as tuning)"]
    if profile.min_duration_ms is not None:
        lines.append(f"{key}.{scenario}.min_duration = {profile.min_duration_ms}")
    if plan.min_query_count is not None:
        lines.append(f"# {plan.bounded}")
        lines.append(f"{key}.{scenario}.min_query_count = {plan.min_query_count}")
    elif scenario in profile.min_query_count:
        lines.append(f"{key}.{scenario}.min_query_count = {profile.min_query_count[scenario]}")
    if performance_sample_count is not None:
        lines.append(f"{key}.{scenario}.performance_sample_count_override = {performance_sample_count}")
    for conf_key, value in plan.conf.items():
        lines.append(f"{key}.{scenario}.{conf_key} = {fmt(value)}")
    return "\n".join(lines) + "\n"
