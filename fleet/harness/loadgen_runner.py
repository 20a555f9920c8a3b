"""One LoadGen test: TestSettings from the conf texts, QSL + SUT around the engine, StartTest.

The run directory receives LoadGen's own files plus the mlperf.conf, user.conf (and for a
compliance test the audit.config) whose values were applied, so a reader can see exactly
what the run was told. See loadgen_conf.py for why FromConfig is not used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.harness import loadgen_conf
from fleet.harness.errors import HarnessError
from fleet.harness.heap import frozen_heap
from fleet.harness.qsl import RunErrors, SampleStore
from fleet.harness.sut import Engine, make_sut
from fleet.harness.tasks.base import Task

# LoadGen reads an audit.config from the path it is given (default: the cwd's audit.config).
# The harness applies audit settings itself and points LoadGen at a file that never exists.
NO_AUDIT_FILE = ".fleet-no-audit.config"


def loadgen() -> Any:
    try:
        import mlperf_loadgen
    except ImportError:
        raise HarnessError("mlperf_loadgen is not installed (pip install mlcommons-loadgen)") from None
    return mlperf_loadgen


def build_settings(lg: Any, scenario: str, mode: str, texts: list[tuple[str, str]],
                   loadgen_key: str) -> tuple[Any, dict[str, str]]:
    """TestSettings for (scenario, mode) from (file name, text) pairs applied in order."""
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = lg.TestMode.AccuracyOnly if mode == "accuracy" else lg.TestMode.PerformanceOnly
    values = loadgen_conf.resolve(texts, loadgen_key, scenario)
    loadgen_conf.apply(settings, values, scenario, lg)
    return settings, values


def run_test(task: Task, backend: Any, scenario: str, settings: Any, run_dir: Path,
             batch_size: int, performance_sample_count: int, server_timeout_s: float = 0.0) -> RunErrors:
    """Run one LoadGen test writing its logs into run_dir; returns the errors seen."""
    lg = loadgen()
    errors = RunErrors()
    store = SampleStore(task, errors)
    qsl = lg.ConstructQSL(task.total_sample_count, performance_sample_count, store.load, store.unload)
    engine = Engine(task, backend, store, errors, lg)
    sut = make_sut(scenario, engine, batch_size, lg, server_timeout_s)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(run_dir)
    log_settings.log_output.prefix_with_datetime = False
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    try:
        with frozen_heap():
            lg.StartTestWithLogSettings(sut.handle, qsl, settings, log_settings, str(run_dir / NO_AUDIT_FILE))
    finally:
        sut.stop()
        lg.DestroyQSL(qsl)
    return errors
