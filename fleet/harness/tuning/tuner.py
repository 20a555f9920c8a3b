"""Tune one node for one task: backend knobs by short LoadGen runs, then LoadGen targets.

Per scenario, within its share of the budget:

1. Knobs (search.search_knobs over space.knob_space): Offline maximises samples/s; Server
   maximises Offline samples/s among batches whose batch time stays within a share of the
   latency bound (the dynamic batcher then has room); SingleStream/MultiStream minimise the
   p90/p99 latency. The start is the untuned default, so tuning never picks worse than it.
2. Targets: Offline and SingleStream/MultiStream take a longer calibration run of the winner
   (`stable_s`: short bursts on a CFS-capped node overestimate it) and write the measured
   value with the run profile's headroom; Server searches the target QPS (bracketing, then
   bisection; a trial counts only when LoadGen says VALID, which includes its early-stopping
   verdict, and the observed p99 is within the bound), takes the best VALID target less the
   safety margin, and runs that once more to confirm it (stepping down if it does not hold).

The result per scenario (chosen settings, the RunSpec.tuning values, every trial) goes into
OUT/tuning.json; each trial's LoadGen logs and a readable log stay under
OUT/<task>/<scenario>/tuning/.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from fleet.harness import hostfacts, manifest
from fleet.harness.errors import HarnessError
from fleet.harness.nodeinfo import server_intra_op_threads, usable_cpus
from fleet.harness.planning import SERVER_BATCH_SHARE_OF_BOUND
from fleet.harness.rules import v3_1 as rules
from fleet.harness.runner import BackendWrapper, with_task_backend
from fleet.harness.spec import RunSpec
from fleet.harness.tasks import get_task
from fleet.harness.tuning import record
from fleet.harness.tuning.options import TuneOptions, budget_shares
from fleet.harness.tuning.search import KnobTrial, ServerTrial, search_knobs, search_server_qps
from fleet.harness.tuning.space import ORDERED, KnobSpace, knob_space
from fleet.harness.tuning.trials import Trial, TrialBench

# Offline knob trials ask LoadGen for this many times the best rate seen so far: a faster
# configuration then still fills min_duration, a slower one just runs longer.
OFFLINE_HEADROOM = 1.3
# Share of a Server scenario's budget spent on knobs; the QPS search gets the rest.
SERVER_KNOB_SHARE = 0.35
# Share of an Offline/latency scenario's budget spent on knobs; the calibration run the rest.
KNOB_SHARE = 0.7
SERVER_START_FRACTION = 0.5  # first Server target: this fraction of the Offline rate
SERVER_GROWTH = 1.5
# One Server trial needs 459 queries; below the QPS where that takes this share of the
# search budget the search gives up (stopped_by "floor").
SERVER_LONGEST_TRIAL_SHARE = 0.5
# No lower Server target can help once, at a light load (at most this share of the Offline
# rate), the median query already takes this share of the latency bound.
HOPELESS_LOAD = 0.3
HOPELESS_P50_SHARE = 0.6
# The recommended Server target is run once more ("confirm"), CONFIRM_DURATION times as long as
# a search trial (the p99 of ~500 queries is the 5th-worst one; twice the queries halve the
# weight of one stall). When it is not VALID the target steps down by the next factor and is
# confirmed again: 1, 0.95, 0.855, 0.684 of the recommendation. Growing steps, because a node
# whose first confirmation failed is unsteadier than its search said (a neighbour on the same
# cores, a CFS quota): 5 % steps only retried the same noise.
CONFIRM_DURATION = 2.0
CONFIRM_STEPS = (0.95, 0.9, 0.8)


def trial_profile(base: rules.Profile) -> rules.Profile:
    """The base profile for trials: small datasets allowed, calibration >= 0.5 s."""
    return rules.Profile(name="tuning", min_duration_ms=1000, min_query_count={},
                         cap_performance_sample_count=True, calibration_s=max(0.5, base.calibration_s),
                         offline_qps_margin=base.offline_qps_margin, latency_margin=base.latency_margin,
                         server_utilization=base.server_utilization,
                         calibration_max_s=base.calibration_max_s, retry_invalid=False)


def _available_providers(backend: str) -> list[str]:
    if backend != "onnxruntime":
        return []
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def lower_target_cannot_help(target_qps: float, offline_rate: float, p50_ms: float | None,
                             bound_ms: float) -> bool:
    """True when an INVALID Server trial says no lower target will be VALID either.

    At a light load (at most HOPELESS_LOAD of the Offline rate) queueing adds little to a
    query's latency, and the max batch keeps a batch within a quarter of the bound; a median
    that still takes HOPELESS_P50_SHARE of the bound is the node's own latency (compute,
    thread wake-ups), which a lower target does not reduce.
    """
    return (bound_ms > 0 and p50_ms is not None and target_qps <= offline_rate * HOPELESS_LOAD
            and p50_ms >= bound_ms * HOPELESS_P50_SHARE)


def confirm_server_target(target: float, trial: Callable[..., ServerTrial], rec: dict[str, Any]) -> float:
    """The recommended target, run again (a short trial can be lucky); stepped down until VALID.

    Confirmation may overrun the budget by up to len(CONFIRM_STEPS) + 1 runs: without it the
    search's answer may not hold.
    """
    confirms = rec["measured"]["confirm_trials"] = []
    for step in (*CONFIRM_STEPS, None):
        result = trial(target, "confirm")
        confirms.append({"target_qps": target, "valid": result.valid, "note": result.note})
        if result.valid:
            return target
        if step is None:
            break
        target *= step
    raise HarnessError(f"the Server target did not hold when run again ({len(confirms)} confirmation "
                       f"runs, down to {confirms[-1]['target_qps']:.4g} QPS): this node's latency is "
                       "too unsteady for a short search; raise --safety-margin or the budget")


class ScenarioTuner:
    """Tunes one scenario with a TrialBench; `run()` returns its record (see record.py)."""

    def __init__(self, bench: TrialBench, scenario: str, opts: TuneOptions, run_profile: rules.Profile,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bench = bench
        self.scenario = scenario
        self.opts = opts
        self.run_profile = run_profile
        self.clock = clock
        self.started = clock()
        self.task = get_task(bench.spec.task)
        self.bound_s = (rules.MODELS[self.task.rules_model].server_latency_ns or 0) / 1e9
        self.by_key: dict[tuple, Trial] = {}
        self.best_rate: float | None = None  # best Offline samples/s seen
        self.latency_s: float | None = None  # last latency seen (SingleStream/MultiStream)

    # -- helpers ----------------------------------------------------------------------------

    def left(self) -> float:
        return self.opts.budget_s - (self.clock() - self.started)

    @staticmethod
    def _key(settings: dict[str, Any]) -> tuple:
        return tuple(sorted(settings.items()))

    def _space(self, start_batch: int | None = None) -> KnobSpace:
        spec = self.bench.spec
        return knob_space(self.scenario, spec.backend, spec.tuning, usable_cpus=usable_cpus(),
                          max_batch=self.task.max_batch_size, start_batch=start_batch,
                          available_providers=_available_providers(spec.backend),
                          server_threads=server_intra_op_threads())

    def _start_space(self) -> KnobSpace:
        """The space, started at the batch the untuned harness would measure as best."""
        space = self._space()
        pins = self.bench.spec.tuning
        if self.scenario not in ("Offline", "Server") or "batch_size" not in space.values:
            return space
        first = self.bench.harness({**space.start, **space.fixed})
        ladder = space.values["batch_size"]
        if self.scenario == "Offline" and not pins.batch_size:
            return self._space(first.calibrator.best_batch(ladder).batch)
        limit = self.bound_s * SERVER_BATCH_SHARE_OF_BOUND if self.bound_s else None
        return self._space(first.calibrator.best_batch(ladder, limit).batch)

    # -- knob trials ------------------------------------------------------------------------

    def _throughput(self, settings: dict[str, Any], kind: str = "knob",
                    min_duration_s: float | None = None) -> Trial:
        batch = int(settings.get("batch_size") or 1)
        if self.best_rate is None:
            self.best_rate, _ = self.bench.estimate(settings, batch)
        duration = min_duration_s or self.opts.trial_s
        conf = {"target_qps": self.best_rate * OFFLINE_HEADROOM}
        trial = self.bench.run(kind, "Offline", settings, conf, duration, batch)
        if trial.ok and trial.result and trial.min_duration_met is False:
            # Faster than LoadGen was told: the run ended early. Measure again, told right.
            again = self.bench.run(kind, "Offline", settings, {"target_qps": trial.result * OFFLINE_HEADROOM},
                                   duration, batch)
            trial.note = f"ended before min_duration: measured again as trial {again.n}"
            trial.superseded_by = again.n
            trial = again
        if trial.ok and trial.result:
            self.best_rate = max(self.best_rate, trial.result)
        return trial

    def _latency(self, settings: dict[str, Any], batch: int, kind: str = "knob",
                 min_duration_s: float | None = None) -> Trial:
        if self.latency_s is None:
            _, self.latency_s = self.bench.estimate(settings, batch)
            if self.scenario == "MultiStream":
                spq = rules.SCENARIO_RULES["MultiStream"].samples_per_query
                self.latency_s *= math.ceil(spq / batch)
        conf = {"target_latency": self.latency_s * 1e3 * self.run_profile.latency_margin}
        duration = min_duration_s or self.opts.trial_s
        trial = self.bench.run(kind, self.scenario, settings, conf, duration, batch)
        if trial.ok and trial.mean_ms:
            self.latency_s = trial.mean_ms / 1e3
        return trial

    def _multistream_batch(self) -> int:
        spq = rules.SCENARIO_RULES["MultiStream"].samples_per_query
        cap = self.task.max_batch_size
        return min(spq, cap or spq, self.bench.spec.tuning.batch_size or spq)

    def _measure(self, bound_s: float) -> Callable[[Any], KnobTrial]:
        def measure(settings: Any) -> KnobTrial:
            settings = dict(settings)
            if self.scenario in ("Offline", "Server"):
                trial = self._throughput(settings)
                score = trial.result or 0.0
                valid = trial.ok and score > 0
                note = f"trial {trial.n}"
                if valid and self.scenario == "Server" and bound_s:
                    batch_s = int(settings.get("batch_size") or 1) / score
                    if settings.get("batch_size", 1) > 1 and batch_s > bound_s * SERVER_BATCH_SHARE_OF_BOUND:
                        valid = False
                        trial.note = (f"batch takes {batch_s * 1e3:.1f} ms, over "
                                      f"{SERVER_BATCH_SHARE_OF_BOUND:.0%} of the {bound_s * 1e3:g} ms bound")
                        note += f" ({trial.note})"
            else:
                batch = 1 if self.scenario == "SingleStream" else self._multistream_batch()
                trial = self._latency(settings, batch)
                latency = trial.p90_ms if self.scenario == "SingleStream" else trial.p99_ms
                score = 1e3 / latency if latency else 0.0
                valid = trial.ok and score > 0
                note = f"trial {trial.n}"
            self.by_key[self._key(settings)] = trial
            return KnobTrial(settings, score, valid, note)

        return measure

    # -- the scenario -----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        rec: dict[str, Any] = {"scenario": self.scenario, "status": "failed", "error": None,
                               "started": started,
                               "budget_s": self.opts.budget_s, "safety_margin": self.opts.safety_margin,
                               "profile": self.run_profile.name, "settings": None, "tuning": None,
                               "measured": {}, "space": None, "knob_search": None, "server_search": None}
        try:
            self._run(rec)
        except HarnessError as exc:
            rec["error"] = str(exc)
        rec["trials"] = [t.as_dict() for t in self.bench.trials]
        rec["trial_count"] = len(self.bench.trials)
        rec["wall_s"] = round(self.clock() - self.started, 2)
        return rec

    def _run(self, rec: dict[str, Any]) -> None:
        bound_s = self.bound_s
        space = self._start_space()
        rec["space"] = space.as_dict()
        share = SERVER_KNOB_SHARE if self.scenario == "Server" else KNOB_SHARE
        knob_budget = max(0.0, self.opts.budget_s * share - (self.clock() - self.started))
        found = search_knobs(self._measure(bound_s), space.values, {**space.start, **space.fixed},
                             max_trials=self.opts.max_trials, budget_s=knob_budget, ordered=ORDERED,
                             clock=self.clock)
        best = found.best
        rec["knob_search"] = {
            "stopped_by": found.stopped_by,
            "best_trial": self.by_key[self._key(dict(best.settings))].n if best else None,
            "score": best.score if best else None,
        }
        if best is None:
            errors = [t.error for t in self.bench.trials if t.error]
            raise HarnessError("no knob setting ran: " + (errors[0] if errors else "every trial failed"))
        settings = dict(best.settings)
        rec["settings"] = settings
        backend = {k: settings[k] for k in ("threads", "graph_optimization", "execution_provider")
                   if k in settings}
        if self.scenario == "Offline":
            self._offline_target(rec, settings, backend)
        elif self.scenario == "Server":
            self._server_target(rec, settings, backend, bound_s)
        else:
            self._latency_target(rec, settings, backend)
        rec["status"] = "ok"

    def _offline_target(self, rec: dict[str, Any], settings: dict[str, Any], backend: dict[str, Any]) -> None:
        stable = self._throughput(settings, kind="target", min_duration_s=self.opts.stable_s)
        measured = stable.result if stable.ok and stable.result else None
        if measured is None:
            measured = self.by_key[self._key(settings)].result
            stable.note = "calibration run failed: using the knob trial's rate"
        factor = max(self.run_profile.offline_qps_margin, 1.0 + self.opts.safety_margin)
        rec["measured"] = {"offline_samples_per_s": measured, "calibration_trial": stable.n,
                           "expected_qps_factor": factor}
        rec["tuning"] = {**backend, "batch_size": settings.get("batch_size"),
                         "offline_expected_qps": round(measured * factor, 3)}

    def _latency_target(self, rec: dict[str, Any], settings: dict[str, Any], backend: dict[str, Any]) -> None:
        batch = 1 if self.scenario == "SingleStream" else self._multistream_batch()
        stable = self._latency(settings, batch, kind="target", min_duration_s=self.opts.stable_s)
        mean_ms = stable.mean_ms if stable.ok and stable.mean_ms else self.by_key[self._key(settings)].mean_ms
        if not mean_ms:
            raise HarnessError(f"the {self.scenario} calibration run measured no latency: {stable.error}")
        factor = min(self.run_profile.latency_margin, 1.0 - self.opts.safety_margin)
        key = "singlestream_expected_latency_ms" if self.scenario == "SingleStream" \
            else "multistream_expected_latency_ms"
        rec["measured"] = {"mean_latency_ms": mean_ms, "p90_ms": stable.p90_ms, "p99_ms": stable.p99_ms,
                           "calibration_trial": stable.n, "expected_latency_factor": factor}
        rec["tuning"] = {**backend, key: round(mean_ms * factor, 4)}

    def _server_target(self, rec: dict[str, Any], settings: dict[str, Any], backend: dict[str, Any],
                       bound_s: float) -> None:
        batch = int(settings.get("batch_size") or 1)
        rate = self.by_key[self._key(settings)].result or self.best_rate or 1.0
        budget = max(self.left(), self.opts.trial_s)
        longest = max(10.0, budget * SERVER_LONGEST_TRIAL_SHARE)
        min_qps = rules.EARLY_STOPPING_MIN_QUERIES["Server"] / longest
        numbers: list[int] = []
        medians: dict[float, float | None] = {}

        def hopeless(result: ServerTrial) -> bool:
            return lower_target_cannot_help(result.target_qps, rate, medians.get(result.target_qps),
                                            bound_s * 1e3)

        def trial(qps: float, kind: str = "server") -> ServerTrial:
            seconds = self.opts.trial_s * (CONFIRM_DURATION if kind == "confirm" else 1.0)
            t = self.bench.run(kind, "Server", settings, {"target_qps": qps}, seconds, batch)
            if kind == "server":
                numbers.append(t.n)
            medians[qps] = t.p50_ms
            within = t.p99_ms is not None and (not bound_s or t.p99_ms <= bound_s * 1e3)
            valid = t.ok and t.validity == "VALID" and within
            if t.ok and t.validity == "VALID" and not within:
                t.note = f"p99 {t.p99_ms} ms over the {bound_s * 1e3:g} ms bound"
            note = t.note or (t.invalid_reason or "") if not valid else ""
            return ServerTrial(qps, valid, t.p99_ms, t.result, f"trial {t.n}{': ' + note if note else ''}")

        found = search_server_qps(trial, max(rate * SERVER_START_FRACTION, min_qps),
                                  growth=SERVER_GROWTH, tolerance=self.opts.tolerance,
                                  safety_margin=self.opts.safety_margin, max_trials=self.opts.max_trials,
                                  budget_s=budget, min_qps=min_qps, hopeless=hopeless, clock=self.clock)
        rec["server_search"] = {**found.as_dict(), "trial_numbers": numbers,
                                "latency_bound_ms": bound_s * 1e3}
        if found.recommended_qps is None:
            lowest = min(found.trials, key=lambda t: t.target_qps)
            if found.stopped_by == "hopeless":
                q = lowest.target_qps
                raise HarnessError(
                    f"no VALID Server target: at {q:.3g} QPS ({q / rate:.0%} of the Offline rate) the "
                    f"median query already takes {medians[q]:.1f} ms of the {bound_s * 1e3:g} ms bound; "
                    "a lower target cannot help on this node")
            raise HarnessError(f"no VALID Server target found (lowest tried {lowest.target_qps:.3g} QPS; "
                               f"{found.stopped_by})")
        rec["measured"] = {"offline_samples_per_s": rate,
                           "server_best_valid_qps": found.best.target_qps if found.best else None,
                           "server_ceiling_qps": found.ceiling.target_qps if found.ceiling else None}
        target = confirm_server_target(found.recommended_qps, trial, rec)
        rec["tuning"] = {**backend, "server_max_batch": batch, "server_target_qps": round(target, 3)}


def tune_spec(spec: RunSpec, out: Path, opts: TuneOptions, *, cache_root: Path | None = None,
              echo: Callable[[str], None] = print,
              wrap_backend: BackendWrapper | None = None) -> dict[str, dict[str, Any]]:
    """Tune every scenario of `spec` (budget shared by options.SCENARIO_WEIGHT); writes OUT/tuning.json.

    Returns scenario -> record. A scenario whose tuning fails (no setting runs, no VALID
    Server target) is recorded as failed and the next goes on. `wrap_backend` is for tests.
    """
    opts.check()
    if not spec.scenarios:
        raise HarnessError("no scenario to tune")
    spec = with_task_backend(spec)
    out = Path(out)
    run_profile = rules.PROFILES.get(spec.profile)
    if run_profile is None:
        raise HarnessError(f"unknown profile {spec.profile!r} (choose from {', '.join(rules.PROFILES)})")
    shares = budget_shares(opts.budget_s, spec.scenarios)
    host = hostfacts.host_facts()
    versions = manifest.versions()
    records: dict[str, dict[str, Any]] = {}
    for scenario in spec.scenarios:
        share = replace(opts, budget_s=shares[scenario])
        base = out / spec.task / scenario / "tuning"
        if base.exists():
            shutil.rmtree(base)
        base.mkdir(parents=True)
        log = record.Log(base / "tuning.log", echo)
        log(f"tuning {spec.task} {scenario} on {host.get('hostname')}: budget {share.budget_s:.0f} s, "
            f"safety margin {share.safety_margin:g}, trials of {share.trial_s:g} s")
        bench = TrialBench(spec, base / "trials", trial_profile(run_profile), out, cache_root=cache_root,
                           echo=log, wrap_backend=wrap_backend)
        started = time.monotonic()
        try:
            rec = ScenarioTuner(bench, scenario, share, run_profile).run()
        finally:
            bench.close()
        log(record.summary_line(spec.task, rec))
        records[scenario] = rec
        record.save(out, spec, rec, host, versions, started)
    return records
