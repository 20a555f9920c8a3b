"""Regression verdicts: direction-aware drops against a median baseline, breaks, accuracy, causes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fleet.history.ingest import FailedJob, read_run
from fleet.history.store import HistoryStore, ResultRow
from fleet.regress import Policy, judge, lower_is_better

from .factory import T0, VERSIONS, Host, entry, host_facts, write_run


def _history(tmp_path: Path, nights: list[list[Host]], failed: dict[int, list[FailedJob]] | None = None):
    """Ingest one run per night (hosts' entries get that night's start time); return all rows."""
    with HistoryStore(tmp_path / "h.sqlite") as store:
        for night, hosts in enumerate(nights):
            when = T0 + timedelta(days=night)
            for host in hosts:
                for e in host.entries:
                    e["started"] = when.isoformat()
            root = write_run(tmp_path / "runs", f"run{night}", hosts)
            store.replace_run(*read_run(root, failed=(failed or {}).get(night, ())))
        return store.results()


def _offline(values_by_host: dict[str, float], **kw) -> list[Host]:
    return [Host(h, [entry("resnet50", "Offline", value=v, **kw)]) for h, v in values_by_host.items()]


def _flags(report, system: str) -> set[str]:
    return {f.kind for v in report.verdicts if v.system == system for f in v.flags}


def test_direction_comes_from_the_rules_table() -> None:
    assert lower_is_better("SingleStream") and lower_is_better("MultiStream")
    assert not lower_is_better("Offline") and not lower_is_better("Server")


def test_throughput_drop_is_flagged_for_that_system_only(tmp_path: Path) -> None:
    rows = _history(tmp_path, [
        _offline({"a": 100, "b": 200}),
        _offline({"a": 104, "b": 196}),
        _offline({"a": 70, "b": 201}),
    ])  # fmt: skip
    report = judge(rows, Policy(threshold=0.05))
    assert report.run_id == "run2"
    assert [v.system for v in report.regressions] == ["a_cpu"]
    a = report.regressions[0]
    assert a.baseline == pytest.approx(102) and a.baseline_n == 2
    assert a.change == pytest.approx(70 / 102 - 1)
    assert _flags(report, "b_cpu") == set()


def test_latency_rise_is_a_regression_and_latency_fall_an_improvement(tmp_path: Path) -> None:
    def ss(a: float, b: float) -> list[Host]:
        return [Host("a", [entry("resnet50", "SingleStream", value=a)]),
                Host("b", [entry("resnet50", "SingleStream", value=b)])]  # fmt: skip

    report = judge(_history(tmp_path, [ss(10, 10), ss(10, 10), ss(12, 8)]))
    assert _flags(report, "a_cpu") == {"slower"}
    assert _flags(report, "b_cpu") == {"faster"}
    assert [v.system for v in report.improvements] == ["b_cpu"]


def test_baseline_is_the_median_of_the_last_n_valid_runs(tmp_path: Path) -> None:
    nights = [_offline({"a": v}) for v in (500, 100, 101, 99)]
    nights.append([Host("a", [entry(value=10, validity="INVALID")])])  # not part of any baseline
    nights.append(_offline({"a": 96}))
    report = judge(_history(tmp_path, nights), Policy(threshold=0.05, baseline_runs=3))
    verdict = report.verdicts[0]
    assert verdict.baseline == 100 and verdict.baseline_n == 3  # 500 is older than the last 3 valid
    assert verdict.flags[0].kind == "valid-again" and not verdict.regression


def test_threshold_decides(tmp_path: Path) -> None:
    rows = _history(tmp_path, [_offline({"a": 100}), _offline({"a": 93})])
    assert judge(rows, Policy(threshold=0.05)).regressions
    assert not judge(rows, Policy(threshold=0.10)).regressions


def test_validity_change_is_flagged(tmp_path: Path) -> None:
    nights = [_offline({"a": 100}), [Host("a", [entry(value=100, validity="INVALID")])]]
    verdict = judge(_history(tmp_path, nights)).verdicts[0]
    assert [(f.kind, f.regression) for f in verdict.flags] == [("invalid", True)]


def test_a_failed_or_missing_job_breaks_and_then_keeps_failing(tmp_path: Path) -> None:
    gone = FailedJob("a", "resnet50", "Offline", "performance", "unreachable", system="a_cpu")
    lost = {1: [gone], 2: [gone]}
    nights = [_offline({"a": 100, "b": 100}), _offline({"b": 100}), _offline({"b": 100}), _offline({"a": 99})]
    rows = _history(tmp_path, nights, lost)
    assert _flags(judge(rows, run_id="run1"), "a_cpu") == {"broke"}
    assert _flags(judge(rows, run_id="run2"), "a_cpu") == {"failing"}
    fixed = judge(rows, run_id="run3")
    assert _flags(fixed, "a_cpu") == {"fixed"} and not fixed.regressions
    failed = [Host("a", [entry(outcome="failed", value=None, validity=None, error="onnxruntime crashed")])]
    report = judge(_history(tmp_path / "x", [_offline({"a": 100}), failed]))
    assert [f.message for f in report.regressions[0].flags] == ["performance failed: onnxruntime crashed"]


def test_accuracy_below_target_and_failed_compliance(tmp_path: Path) -> None:
    night = [Host("a", [entry(value=100), entry(mode="accuracy", accuracy=70.0),
                        entry(mode="TEST04", verify="TEST FAIL")])]  # fmt: skip
    report = judge(_history(tmp_path, [night]))
    assert _flags(report, "a_cpu") == {"accuracy", "compliance"}
    good = [Host("a", [entry(value=100), entry(mode="accuracy", accuracy=76.0)])]
    assert not judge(_history(tmp_path / "ok", [good])).regressions


def test_software_and_host_changes_are_named_beside_a_flag(tmp_path: Path) -> None:
    newer = dict(VERSIONS, onnxruntime="1.18.0")
    slowed = host_facts("a", cpu_quota=0.25)
    nights = [
        _offline({"a": 100, "b": 100}),
        [Host("a", [entry(value=60)], versions=newer, facts=slowed),
         Host("b", [entry(value=101)], versions=newer)],
    ]  # fmt: skip
    report = judge(_history(tmp_path, nights))
    a = next(v for v in report.verdicts if v.system == "a_cpu")
    b = next(v for v in report.verdicts if v.system == "b_cpu")
    assert a.causes == (
        "software changed: onnxruntime 1.17.1 -> 1.18.0",
        "host changed: cpu_quota None -> 0.25",
    )
    assert b.causes == ()  # a version change that coincides with no change is not news


def test_smoke_and_real_results_are_not_compared(tmp_path: Path) -> None:
    nights = [
        [Host("a", [entry(value=1000, profile="submission", synthetic=False)])],
        _offline({"a": 100}),
    ]
    verdict = judge(_history(tmp_path, nights)).verdicts[0]
    assert verdict.baseline is None and verdict.flags == () and verdict.synthetic
    real = judge(_history(tmp_path / "real", nights[:1])).verdicts[0]
    assert not real.synthetic


def test_empty_history_and_unknown_run() -> None:
    assert judge([]).verdicts == ()
    row: list[ResultRow] = []
    assert judge(row, run_id="nope").run_id is None
