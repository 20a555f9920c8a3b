"""The versioned contract between controller and node: `spec.json` in, `manifest.json` out.

A RunSpec says what one node must run (one task, its scenarios and modes, where the assets
are, how to tune the backend). The node writes LoadGen's logs under
`<out>/<task>/<scenario>/{performance/run_1,accuracy,TEST01,TEST04,TEST05}` and a
`manifest.json` at `<out>/` (see docs/contracts.md). Standard library only: nodes import it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from fleet.harness.jsonfile import read_json

SPEC_VERSION = 1
MANIFEST_VERSION = 1


class SpecError(ValueError):
    """spec.json is malformed or from an incompatible version."""


@dataclass
class Tuning:
    """Backend and LoadGen knobs; None means "let the harness decide from the node"."""

    threads: int | None = None
    batch_size: int | None = None
    graph_optimization: str | None = None  # onnxruntime: disable|basic|extended|all
    execution_provider: str | None = None  # onnxruntime: cpu|cuda|tensorrt
    precision: str | None = None  # fp32 (default) | bf16 | fp16 where the backend and device run it
    # The null backend only: each batch sleeps this many milliseconds per sample, a stand-in
    # model cost with no compute (orchestration benchmarks; a planted slowdown in the nightly
    # test). None: it answers at once.
    null_sample_ms: float | None = None
    # LoadGen expectations (a user.conf would carry these).
    offline_expected_qps: float | None = None
    server_target_qps: float | None = None
    singlestream_expected_latency_ms: float | None = None
    multistream_expected_latency_ms: float | None = None
    # Server dynamic batcher.
    server_max_batch: int | None = None
    server_batch_timeout_ms: float | None = None
    # Set by `fleet run --tuned`: the host-facts digest (harness/tuning/digest.py) the values
    # were tuned on and the fields the tuning set; a node whose digest differs drops them.
    tuned_for: str | None = None
    tuned_fields: list[str] = field(default_factory=list)


@dataclass
class RunSpec:
    """One node's work for one task: every (scenario, mode) pair runs in order."""

    task: str
    scenarios: list[str]
    modes: list[str] = field(default_factory=lambda: ["performance", "accuracy"])
    profile: str = "smoke"  # smoke | submission
    backend: str = ""  # empty: the task's reference backend (Task.model_backends[0])
    model: str = ""  # path on the node
    dataset: str = ""  # path on the node
    synthetic: bool = False  # assets made by fleet.harness.synthetic (never a real closed result)
    tuning: Tuning = field(default_factory=Tuning)
    system_name: str = ""
    category: str = ""  # edge | datacenter (informational on the node)
    run_id: str = ""
    # 0: the job itself. k >= 1: the k-th measured repeat of its performance run (a nightly
    # sweep's `repeats:`), written under <task>/<scenario>/repeats/run_k and recorded in the
    # manifest with `repeat: k`, beside the job's own run_1, never instead of it.
    repeat: int = 0
    version: int = SPEC_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        if not isinstance(data, dict):
            raise SpecError("spec must be a JSON object")
        version = data.get("version", SPEC_VERSION)
        if version != SPEC_VERSION:
            raise SpecError(f"spec version {version} is not supported (this harness reads {SPEC_VERSION})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"unknown spec field(s): {', '.join(unknown)}")
        tuning_data = data.get("tuning") or {}
        tuning_known = {f.name for f in fields(Tuning)}
        bad = sorted(set(tuning_data) - tuning_known)
        if bad:
            raise SpecError(f"unknown tuning field(s): {', '.join(bad)}")
        kwargs = {k: v for k, v in data.items() if k != "tuning"}
        try:
            return cls(tuning=Tuning(**tuning_data), **kwargs)
        except TypeError as exc:
            raise SpecError(f"spec is missing a field: {exc}") from None

    @classmethod
    def read(cls, path: Path) -> RunSpec:
        data = read_json(path, SpecError, missing="spec file {path} does not exist",
                         invalid="spec file {path} is not valid JSON: {exc}")
        return cls.from_dict(data)


def run_dir(out: Path, task: str, scenario: str, mode: str, repeat: int = 0) -> Path:
    """Where one (task, scenario, mode) run writes its LoadGen logs on the node."""
    base = Path(out) / task / scenario
    if repeat:
        return base / "repeats" / f"run_{repeat}"
    if mode == "performance":
        return base / "performance" / "run_1"
    if mode == "accuracy":
        return base / "accuracy"
    return base / mode / "performance" / "run_1"
