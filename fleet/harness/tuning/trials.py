"""One tuning trial = one short, real LoadGen performance run, in this process.

Trials go through the same Harness path as a real run (QSL, SUT, user.conf, detail log), so
what tuning measures is what `run` will do; only the plan (batch, LoadGen expectations) and
the duration come from the tuner. One Harness is kept per backend configuration (threads,
graph optimization, execution provider): changing the batch or the target never reopens the
model. Each trial writes its LoadGen logs under `<root>/<NN>/`, kept as the evidence.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fleet.harness.detail_log import read_detail
from fleet.harness.errors import HarnessError, one_line
from fleet.harness.planning import ScenarioPlan
from fleet.harness.rules import v3_1 as rules
from fleet.harness.runner import BackendWrapper, Harness
from fleet.harness.spec import RunSpec, run_dir

BACKEND_KNOBS = ("threads", "graph_optimization", "execution_provider")
# Open backends kept at once (a full-size model session is ~100 MB).
KEEP_OPEN = 2
# LoadGen queries a trial needs at least: Server's early-stopping minimum (fewer can never be
# VALID); latency trials only need a stable percentile, not a verdict.
TRIAL_MIN_QUERIES = {"Offline": 8, "Server": rules.EARLY_STOPPING_MIN_QUERIES["Server"],
                     "SingleStream": 64, "MultiStream": 64}


@dataclass
class Trial:
    """What one trial ran and what LoadGen said about it."""

    n: int
    kind: str  # knob | target | server
    scenario: str  # the LoadGen scenario run (Server knob trials measure Offline throughput)
    settings: dict[str, Any]
    conf: dict[str, float]  # LoadGen expectations written to the trial's user.conf
    min_duration_s: float
    ok: bool = False
    error: str | None = None
    validity: str | None = None
    result: float | None = None
    unit: str | None = None
    samples_per_s: float | None = None  # completed samples per second
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    early_stopping_met: bool | None = None
    min_duration_met: bool | None = None
    invalid_reason: str | None = None
    dir: str = ""
    wall_s: float = 0.0
    note: str = ""
    superseded_by: int | None = None  # measured again (this run ended before min_duration)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(value: Any) -> float | None:
    return float(value) / 1e6 if isinstance(value, (int, float)) else None


class _TrialHarness(Harness):
    """A Harness whose next run uses the plan and profile the tuner gives it."""

    next_plan: ScenarioPlan | None = None

    def plan(self, scenario: str) -> ScenarioPlan:
        if self.next_plan is not None and self.next_plan.scenario == scenario:
            return self.next_plan
        return super().plan(scenario)


@dataclass
class TrialBench:
    """Runs trials of one spec's task on this node; `root` receives the trials' logs.

    Trial dirs are recorded relative to `base` (the node's OUT), as the manifest does.
    """

    spec: RunSpec
    root: Path
    profile: rules.Profile
    base: Path
    cache_root: Path | None = None
    echo: Callable[[str], None] = print
    wrap_backend: BackendWrapper | None = None  # tests only, as Harness's
    trials: list[Trial] = field(default_factory=list)
    _open: OrderedDict = field(default_factory=OrderedDict)

    def harness(self, settings: Mapping[str, Any]) -> _TrialHarness:
        """The Harness for these backend settings (opened once, least recently used closed)."""
        key = tuple(settings.get(k) for k in BACKEND_KNOBS)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        while len(self._open) >= KEEP_OPEN:
            _, old = self._open.popitem(last=False)
            old.backend.close()
        tuning = replace(self.spec.tuning, tuned_for=None, tuned_fields=[],
                         **{k: settings[k] for k in BACKEND_KNOBS if k in settings})
        spec = replace(self.spec, modes=["performance"], tuning=tuning,
                       scenarios=list(dict.fromkeys([*self.spec.scenarios, "Offline"])))
        harness = _TrialHarness(spec, self.root, cache_root=self.cache_root, echo=lambda line: None,
                                profile=self.profile, wrap_backend=self.wrap_backend)
        self._open[key] = harness
        return harness

    def run(self, kind: str, scenario: str, settings: Mapping[str, Any], conf: Mapping[str, float],
            min_duration_s: float, batch: int = 1, min_queries: int | None = None) -> Trial:
        """One LoadGen performance run; never raises for a failing configuration."""
        n = len(self.trials) + 1
        trial = Trial(n, kind, scenario, dict(settings), dict(conf), min_duration_s)
        self.trials.append(trial)
        out = self.root / f"{n:02d}"
        t0 = time.monotonic()
        try:
            harness = self.harness(settings)
            queries = TRIAL_MIN_QUERIES[scenario] if min_queries is None else min_queries
            harness.profile = replace(self.profile, min_duration_ms=max(1, round(min_duration_s * 1e3)),
                                      min_query_count={**self.profile.min_query_count, scenario: queries})
            harness.next_plan = ScenarioPlan(scenario, batch, conf=dict(conf))
            harness.out = out
            entry = harness.run_one(scenario, "performance")
        except HarnessError as exc:
            trial.error = str(exc)
        except Exception as exc:  # a configuration that breaks the backend is a failed trial
            trial.error = f"{type(exc).__name__}: {one_line(exc, 300)}"
        else:
            trial.ok = entry["outcome"] == "ok"
            trial.error = entry["error"]
            trial.validity = entry["result_validity"]
            trial.result, trial.unit = entry["result"], entry["result_unit"]
            rdir = run_dir(out, self.spec.task, scenario, "performance")
            trial.dir = rdir.relative_to(self.base).as_posix()
            self._read_detail(trial, rdir)
        trial.wall_s = round(time.monotonic() - t0, 3)
        self.echo(self.line(trial))
        return trial

    @staticmethod
    def _read_detail(trial: Trial, rdir: Path) -> None:
        detail = read_detail(rdir / "mlperf_log_detail.txt")
        rate = detail.get("result_completed_samples_per_sec") or detail.get("result_samples_per_second")
        trial.samples_per_s = float(rate) if isinstance(rate, (int, float)) else None
        trial.mean_ms = _ms(detail.get("result_mean_latency_ns"))
        trial.p50_ms = _ms(detail.get("result_50.00_percentile_latency_ns"))
        trial.p90_ms = _ms(detail.get("result_90.00_percentile_latency_ns"))
        trial.p99_ms = _ms(detail.get("result_99.00_percentile_latency_ns"))
        met = detail.get("early_stopping_met")
        trial.early_stopping_met = met if isinstance(met, bool) else None
        met = detail.get("result_min_duration_met")
        trial.min_duration_met = met if isinstance(met, bool) else None
        reason = detail.get("result_invalid_reason")
        trial.invalid_reason = one_line(reason) if reason else None

    @staticmethod
    def line(trial: Trial) -> str:
        """One human-readable log line per trial."""
        knobs = " ".join(f"{k}={v}" for k, v in trial.settings.items())
        conf = " ".join(f"{k}={v:.4g}" for k, v in trial.conf.items())
        head = f"trial {trial.n:2d} {trial.kind:6s} {trial.scenario:12s} {knobs} [{conf}]"
        if not trial.ok:
            return f"{head}: FAILED {trial.error}"
        parts = [trial.validity or "?"]
        if trial.result is not None:
            parts.append(f"{trial.result:.4g} {trial.unit}")
        if trial.p99_ms is not None:
            parts.append(f"p99 {trial.p99_ms:.2f} ms")
        if trial.invalid_reason and trial.validity != "VALID":
            parts.append(trial.invalid_reason)
        if trial.note:
            parts.append(trial.note)
        return f"{head}: {', '.join(parts)} ({trial.wall_s:.1f} s)"

    def estimate(self, settings: Mapping[str, Any], batch: int) -> tuple[float, float]:
        """(samples/s, seconds per batch) from a short direct measurement, before any trial."""
        point = self.harness(settings).calibrator.measure(batch)
        return point.throughput, point.latency_s

    def close(self) -> None:
        while self._open:
            _, harness = self._open.popitem(last=False)
            harness.backend.close()
