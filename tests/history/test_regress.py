"""Nightly verdicts: no-baseline, ok, suspect then confirmed, too-noisy, breaks, causes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fleet.history.ingest import FailedJob, read_run
from fleet.history.store import HistoryStore, ResultRow
from fleet.regress import (
    IMPROVEMENT,
    NO_BASELINE,
    OK,
    REGRESSION,
    SUSPECT,
    TOO_NOISY,
    Policy,
    judge,
    lower_is_better,
    walk,
)

from .factory import T0, VERSIONS, Host, entry, host_facts, write_run

STEADY = [100, 101, 99, 100, 102, 98]  # six clean nights: spread ~1.5 %, bar = the 5 % threshold


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


def _series(values: list[float], host: str = "a", **kw) -> list[list[Host]]:
    return [_offline({host: v}, **kw) for v in values]


def _flags(report, system: str) -> set[str]:
    return {f.kind for v in report.verdicts if v.system == system for f in v.flags}


def _states(values: list[float | None], lower: bool = False, **policy) -> list[str]:
    return [s.state for s in walk(values, Policy(**policy), lower)]


def test_direction_comes_from_the_rules_table() -> None:
    assert lower_is_better("SingleStream") and lower_is_better("MultiStream")
    assert not lower_is_better("Offline") and not lower_is_better("Server")


def test_no_verdict_until_enough_clean_nights_then_ok() -> None:
    steps = walk([*STEADY[:5], None, STEADY[5]], Policy(), lower_is_better=False)
    assert [s.state for s in steps] == [NO_BASELINE] * 5 + ["-", OK]
    assert [s.need for s in steps[:5]] == [5, 4, 3, 2, 1]  # clean nights still missing
    assert steps[-1].baseline == 100 and steps[-1].members == (0, 1, 2, 3, 4)  # the None night is not one
    assert steps[-1].bar == 0.05  # quiet series: the lab's threshold is the bar


def test_a_step_is_suspect_for_one_night_and_confirmed_by_the_next() -> None:
    steps = walk([*STEADY, 80, 81, 80, 80], Policy(), lower_is_better=False)
    assert [s.state for s in steps[6:]] == [SUSPECT, REGRESSION, NO_BASELINE, NO_BASELINE]
    confirmed = steps[7]
    assert confirmed.since == 6 and confirmed.members == (0, 1, 2, 3, 4, 5)
    assert confirmed.change == pytest.approx(81 / 100 - 1)
    assert steps[8].restarted and steps[8].need == 3  # the step's two nights start the new baseline


def test_a_suspect_night_the_next_night_drops_was_noise_and_joins_the_baseline() -> None:
    steps = walk([*STEADY, 80, 100, 101], Policy(), lower_is_better=False)
    assert [s.state for s in steps[6:]] == [SUSPECT, OK, OK]
    assert 6 in steps[8].members


def test_a_rise_then_a_fall_confirms_nothing() -> None:
    assert REGRESSION not in _states([*STEADY, 120, 80, 100])
    assert IMPROVEMENT not in _states([*STEADY, 120, 80, 100])


def test_latency_rising_is_the_regression_and_falling_the_improvement() -> None:
    assert _states([*STEADY, 120, 121], lower=True)[-1] == REGRESSION
    assert _states([*STEADY, 80, 79], lower=True)[-1] == IMPROVEMENT
    assert _states([*STEADY, 120, 121], lower=False)[-1] == IMPROVEMENT


def test_a_noisy_series_says_so_instead_of_alarming() -> None:
    noisy = [90, 110, 92, 108, 90, 110]  # spread ~13 %: the bar is ~40 %, above the 5 % threshold
    steps = walk([*noisy, 75, 76], Policy(), lower_is_better=False)
    assert [s.state for s in steps[6:]] == [TOO_NOISY, TOO_NOISY]  # -25 % is inside this series' noise
    assert steps[-1].bar > 0.3
    assert _states([*noisy, 40, 41])[-1] == REGRESSION  # a step beyond the noise still counts


def test_the_threshold_and_the_minimum_come_from_the_policy() -> None:
    assert _states([*STEADY, 93, 93], threshold=0.05)[-2:] == [SUSPECT, REGRESSION]
    assert _states([*STEADY, 93, 93], threshold=0.10)[-2:] == [OK, OK]
    assert _states([100, 101, 99, 100, 80, 80], min_runs=3) == [NO_BASELINE] * 3 + [OK, SUSPECT, REGRESSION]


def test_a_confirmed_regression_is_flagged_for_that_system_only(tmp_path: Path) -> None:
    nights = [_offline({"a": v, "b": 200 + i}) for i, v in enumerate([*STEADY, 70, 71])]
    rows = _history(tmp_path, nights)
    suspect = judge(rows, run_id="run6")
    assert not suspect.regressions
    assert [(v.system, v.state) for v in suspect.verdicts] == [("a_cpu", SUSPECT), ("b_cpu", OK)]
    report = judge(rows)
    assert report.run_id == "run7"
    assert [v.system for v in report.regressions] == ["a_cpu"]
    a = report.regressions[0]
    assert a.state == REGRESSION and a.since_run == "run6" and a.baseline == 100 and a.baseline_n == 6
    assert a.baseline_run_ids == tuple(f"run{i}" for i in range(6))
    assert "second night running" in a.message and "since run run6" in a.message


def test_the_night_value_is_the_median_of_its_repeats(tmp_path: Path) -> None:
    def night(own: float, repeats: list[float]) -> list[Host]:
        extra = [dict(entry(value=v), repeat=k) for k, v in enumerate(repeats, 1)]
        return [Host("a", [entry(value=own), *extra])]

    nights = [night(50, [100, 99, 101]) for _ in range(5)] + [night(10, [100, 130, 98])]
    rows = _history(tmp_path, nights)
    assert len(rows) == 6  # repeats are part of their night's row, not rows of their own
    verdict = judge(rows).verdicts[0]
    assert verdict.value == 100 and verdict.state == OK and verdict.repeats == 3
    assert verdict.repeat_cv == pytest.approx(0.164, abs=1e-3)


def test_validity_change_is_flagged_and_the_invalid_night_is_no_baseline_night(tmp_path: Path) -> None:
    nights = [*_series(STEADY), [Host("a", [entry(value=100, validity="INVALID")])], *_series([99])]
    rows = _history(tmp_path, nights)
    verdict = judge(rows, run_id="run6").verdicts[0]
    assert [(f.kind, f.regression) for f in verdict.flags] == [("invalid", True)] and verdict.state == "-"
    again = judge(rows).verdicts[0]
    assert again.flags[0].kind == "valid-again" and not again.regression
    assert "run6" not in again.baseline_run_ids


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


def test_software_and_host_changes_at_the_step_are_named(tmp_path: Path) -> None:
    newer = dict(VERSIONS, onnxruntime="1.18.0")
    slowed = host_facts("a", cpu_quota=0.25)
    nights = [_offline({"a": v, "b": v}) for v in STEADY]
    nights += [[Host("a", [entry(value=60)], versions=newer, facts=slowed),
                Host("b", [entry(value=101)], versions=newer)]]  # fmt: skip
    nights += [[Host("a", [entry(value=61)], versions=newer, facts=slowed),
                Host("b", [entry(value=100)], versions=newer)]]  # fmt: skip
    report = judge(_history(tmp_path, nights))
    a = next(v for v in report.verdicts if v.system == "a_cpu")
    b = next(v for v in report.verdicts if v.system == "b_cpu")
    assert a.state == REGRESSION
    assert a.causes == (  # what changed between the last baseline night and the step's first night
        "software changed: onnxruntime 1.17.1 -> 1.18.0",
        "host changed: cpu_quota None -> 0.25",
    )
    assert b.state == OK and b.causes == ()  # a version change that coincides with no change is not news


def test_smoke_and_real_results_are_not_compared(tmp_path: Path) -> None:
    nights = [
        [Host("a", [entry(value=1000, profile="submission", synthetic=False)])],
        _offline({"a": 100}),
    ]
    verdict = judge(_history(tmp_path, nights)).verdicts[0]
    assert verdict.baseline is None and verdict.flags == () and verdict.synthetic
    assert verdict.state == NO_BASELINE
    assert verdict.message == "clean night 1 of the 5 a verdict needs: 4 more"
    real = judge(_history(tmp_path / "real", nights[:1])).verdicts[0]
    assert not real.synthetic


def test_empty_history_and_unknown_run() -> None:
    assert judge([]).verdicts == ()
    row: list[ResultRow] = []
    assert judge(row, run_id="nope").run_id is None
