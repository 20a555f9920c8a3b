"""Harness helpers for the RetinaNet/BERT tests: a Harness on synthetic assets, a paced backend.

Offline validity (enough samples for min_duration) and the compliance tests (an audit run
against a performance run) must not follow the load of a shared machine, which swings 5x
between a measurement and the run it plans: the paced backend runs real inference and then
sleeps until a fixed time per sample has passed (inference on these synthetic models takes
a few milliseconds; the pace leaves room for a busy machine).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from harnessenv import WrappedBackend

from fleet.harness.cli import main
from fleet.harness.rules import v3_1 as rules
from fleet.harness.runner import Harness, RunContext
from fleet.harness.spec import RunSpec, Tuning
from fleet.harness.synthetic import MARKER


class PacedBackend(WrappedBackend):
    """Real inference, in Offline padded to `pace_s` per sample; corrupts outputs in some modes."""

    def __init__(self, inner: Any, ctx: RunContext, pace_s: float, corrupt: dict[str, Any]) -> None:
        super().__init__(inner)
        self.ctx = ctx
        self.pace_s = pace_s if ctx.scenario == "Offline" else 0.0
        self.corrupt = corrupt

    def run(self, feed: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        out = self.inner.run(feed, n)
        if self.ctx.mode in self.corrupt:
            out = self.corrupt[self.ctx.mode](out)
        left = self.pace_s * n - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        return out


class PacedPinned(WrappedBackend):
    """The whole infer of a batch (every backend call a task makes for it: RNN-T's decode loop,
    3D-UNet's windows and stitching) padded to `pace_s` per sample in Offline, through `pinned`;
    a pytorch backend's programs and device are the real backend's."""

    def __init__(self, inner: Any, ctx: RunContext, pace_s: float) -> None:
        super().__init__(inner)
        self.pace_s = pace_s if ctx.scenario == "Offline" else 0.0
        for name in ("device", "program"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def run(self, feed: dict[str, Any], n: int) -> Any:
        return self.inner.run(feed, n)

    def pinned(self, call: Any) -> Any:
        run = self.inner.pinned(call)

        def paced(feed: dict[str, Any], n: int) -> Any:
            start = time.perf_counter()
            out = run(feed, n)
            left = self.pace_s * n - (time.perf_counter() - start)
            if left > 0:
                time.sleep(left)
            return out

        return paced


def paced_pinned(pace_s: float):
    """A wrap_backend for Harness: PacedPinned."""
    return lambda inner, ctx: PacedPinned(inner, ctx, pace_s)


def make_harness(
    task: str,
    marker_root: Path,
    marker: dict[str, Any],
    out: Path,
    scenarios: list[str],
    modes: list[str],
    **kwargs: Any,
) -> Harness:
    spec = RunSpec(
        task=task,
        scenarios=scenarios,
        modes=modes,
        model=str(marker_root / marker["model"]["file"]),
        dataset=str(marker_root / marker["dataset"]["dir"]),
        profile="smoke",
        # One intra-op thread: on a shared 2-core machine two spinning onnxruntime threads
        # turn other processes' load into 10x tail latencies (Server's p99 bound).
        tuning=replace(kwargs.pop("tuning", Tuning()), threads=1),
    )
    return Harness(spec, out, echo=lambda line: None, **kwargs)


def paced_compliance_runs(task: str, assets: Any, out: Path, other: str, pace_s: float,
                          offline_expected_qps: float) -> dict[tuple[str, str], dict[str, Any]]:
    """Offline performance, accuracy, TEST01 and TEST05 paced per sample through `pinned`, then
    `other`'s performance and accuracy, on one harness: {(scenario, mode): entry}, each ok."""
    harness = make_harness(task, assets.root, assets.marker, out, ["Offline", other],
                           ["performance", "accuracy", "TEST01", "TEST05"],
                           tuning=Tuning(offline_expected_qps=offline_expected_qps),
                           wrap_backend=paced_pinned(pace_s))
    try:
        entries = {(s, m): harness.run_one(s, m) for s, m in (
            ("Offline", "performance"), ("Offline", "accuracy"), ("Offline", "TEST01"), ("Offline", "TEST05"),
            (other, "performance"), (other, "accuracy"))}
    finally:
        harness.backend.close()
    for key, entry in entries.items():
        assert entry["outcome"] == "ok", (key, entry["error"])
    assert entries[("Offline", "TEST01")]["verify"] == "TEST PASS"
    assert entries[("Offline", "TEST05")]["verify"] == "TEST PASS"
    for scenario in ("Offline", other):
        assert entries[(scenario, "performance")]["result_validity"] == "VALID", scenario
    return entries


def paced(pace_s: float, corrupt: dict[str, Any] | None = None):
    """A wrap_backend for Harness: Offline paced, `corrupt[mode](outputs)` applied in that mode."""
    return lambda inner, ctx: PacedBackend(inner, ctx, pace_s, corrupt or {})


def required_scenarios(model: str) -> tuple[str, ...]:
    """Every scenario some category requires of `model`, sorted."""
    return tuple(sorted({s for scens in rules.MODELS[model].required_scenarios.values() for s in scens}))


def synth(task: str, root: Path) -> tuple[Path, dict[str, Any]]:
    """Assets made as a user makes them (`python -m fleet.harness synth`), and their marker."""
    assert main(["synth", "--task", task, "--out", str(root)]) == 0
    return root, json.loads((root / MARKER).read_text())


def run_scenarios(task: str, assets: tuple[Path, dict[str, Any]], out: Path, scenarios: Sequence[str],
                  pace_s: float) -> dict[str, Any]:
    """Performance and accuracy of each scenario on one harness: {"out", "entries": {(s, m): entry}}.

    Offline is paced (its sample count must cover min_duration whatever the load); the other
    scenarios run at the model's own speed, planned from the harness's measurement.
    """
    harness = make_harness(task, *assets, out, list(scenarios), ["performance", "accuracy"],
                           tuning=Tuning(offline_expected_qps=1 / pace_s), wrap_backend=paced(pace_s))
    entries = {(s, m): harness.run_one(s, m) for s in scenarios for m in ("performance", "accuracy")}
    harness.backend.close()
    return {"out": out, "entries": entries}


def cpu_session(model: Path) -> Any:
    """An onnxruntime CPU session with one intra-op thread (two spin against other tests' load)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def log_entries(payloads: list[bytes], order: list[int] | None = None) -> list[dict]:
    """An accuracy log answering sample n with payloads[order[n]] (the identity by default)."""
    order = order if order is not None else list(range(len(payloads)))
    return [
        {"seq_id": n, "qsl_idx": q, "data": payloads[i].hex().upper()}
        for n, (q, i) in enumerate(zip(range(len(payloads)), order, strict=True))
    ]
