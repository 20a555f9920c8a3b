"""The host-facts digest and the node-side guard that drops tuning from another machine."""

from __future__ import annotations

import json
from dataclasses import replace

from fleet.harness.spec import RunSpec, Tuning
from fleet.harness.tuning.digest import changed_fields, digest_fields, facts_digest
from fleet.harness.tuning.guard import accept_tuning

HOST = {"hostname": "a", "architecture": "x86_64", "cpu_model": "Xeon", "sockets": 1, "cores_per_socket": 2,
        "threads_per_core": 1, "logical_cpus": 2, "usable_cpus": 2, "memory_bytes": 25_000_000_000,
        "accelerators": [], "cpu_quota": None, "kernel": "6.1"}
VERSIONS = {"python": "3.11.2", "fleet": "0.1.0", "loadgen": "6.0.17", "onnxruntime": "1.17", "numpy": "1.26",
            "opencv": "4.9"}


def test_digest_follows_what_changes_performance_only() -> None:
    base = facts_digest(HOST, VERSIONS)
    assert facts_digest({**HOST, "hostname": "b", "kernel": "6.2"}, {**VERSIONS, "opencv": "5"}) == base
    assert facts_digest({**HOST, "memory_bytes": 25_000_100_000}, VERSIONS) == base  # same GiB
    for changed in ({"usable_cpus": 1}, {"cpu_quota": 0.5}, {"cpu_model": "EPYC"},
                    {"accelerators": [{"name": "A100", "memory_bytes": 80 << 30, "count": 1}]}):
        assert facts_digest({**HOST, **changed}, VERSIONS) != base, changed
    assert facts_digest(HOST, {**VERSIONS, "onnxruntime": "1.18"}) != base


def test_changed_fields_names_the_difference() -> None:
    old = digest_fields(HOST, VERSIONS)
    new = digest_fields({**HOST, "usable_cpus": 1}, VERSIONS)
    assert changed_fields(old, new) == ["usable_cpus: 2 -> 1"]


def _spec(tuned_for: str | None) -> RunSpec:
    tuning = Tuning(threads=4, batch_size=16, offline_expected_qps=500.0, execution_provider="cpu",
                    tuned_for=tuned_for, tuned_fields=["batch_size", "offline_expected_qps"])
    return RunSpec(task="resnet50", scenarios=["Offline"], tuning=tuning, system_name="sys1")


def test_guard_keeps_tuning_on_the_same_machine() -> None:
    lines: list[str] = []
    spec = _spec(facts_digest(HOST, VERSIONS))
    assert accept_tuning(spec, HOST, VERSIONS, lines.append) is spec
    assert lines == []


def test_guard_drops_only_tuned_fields_on_a_changed_machine() -> None:
    lines: list[str] = []
    spec = _spec(facts_digest(HOST, VERSIONS))
    out = accept_tuning(spec, {**HOST, "usable_cpus": 1}, VERSIONS, lines.append)
    assert out.tuning == replace(spec.tuning, batch_size=None, offline_expected_qps=None, tuned_for=None,
                                 tuned_fields=[])
    assert out.tuning.threads == 4  # an inventory pin, not a tuned value
    assert len(lines) == 1 and "sys1" in lines[0] and "batch_size, offline_expected_qps" in lines[0]


def test_untuned_spec_passes_through() -> None:
    spec = RunSpec(task="resnet50", scenarios=["Offline"])
    assert accept_tuning(spec, HOST, VERSIONS, print) is spec


def test_spec_round_trips_tuned_fields() -> None:
    spec = _spec("abc")
    again = RunSpec.from_dict(json.loads(spec.to_json()))
    assert again.tuning == spec.tuning
