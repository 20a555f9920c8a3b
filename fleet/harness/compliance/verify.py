"""Compliance verification, written in-house after compliance/nvidia/TESTxx (v3.1 semantics).

verify_performance (TEST01, TEST04, TEST05) reads the reference run's and the audit run's
mlperf_log_summary.txt. Scores: Offline `Samples per second`, Server `Completed samples per
second`, SingleStream / MultiStream the early-stopping p90 / p99 latency estimate (ns; the
regex accepts LoadGen's `90th` and `90.0th` spellings). Either run INVALID, or different
scenarios, fails at once. Thresholds live in rules/v3_1.py VERIFY_THRESHOLDS; a reference
SingleStream latency <= 200 us or MultiStream <= 1.6 ms uses the relaxed one (OS noise).

- TEST01: the test score within +-threshold of the reference.
- TEST04: SingleStream/MultiStream latencies are first turned into 1e9/latency; the test
  must not be faster than reference x (1 + threshold) (faster means results were cached).
- TEST05: Offline and Server: test > reference x (1 - threshold); SingleStream/MultiStream:
  test latency < reference x (1 + threshold). Server follows the v4.0 script: the v3.1-tag
  script has no Server branch and fails every Server run, and the older "test < ref x 1.05"
  rule would pass a SUT that got slower with the new seeds, which is what TEST05 is for.

verify_accuracy (TEST01) is the official algorithm: for each audit-log entry whose qsl_idx
is in the accuracy-run log, decode both with the task's dtype and compare the first element;
TEST PASS when there is at least one match and no mismatch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fleet.harness.rules import v3_1 as rules

_NUMBER = r"([0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    text: str  # the verify_*.txt content; ends with "TEST PASS" or "TEST FAIL..."


@dataclass(frozen=True)
class Summary:
    scenario: str | None
    valid: bool
    score: float | None


def read_summary(path: Path) -> Summary:
    """Scenario, validity and compliance score of a mlperf_log_summary.txt."""
    scenario = None
    valid = False
    score = None
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    for line in lines:
        m = re.match(r"^Scenario\s*:\s*(\S+)", line)
        if m:
            scenario = m.group(1)
        m = re.match(r"^Result is\s*:\s*(\S+)", line)
        if m:
            valid = m.group(1) == "VALID"
    if scenario in ("SingleStream", "MultiStream"):
        pct = rules.SCENARIO_RULES[scenario].target_latency_percentile
        pattern = rf"Early stopping {int(pct)}(?:\.0+)?th percentile estimate\s*:\s*{_NUMBER}"
    elif scenario == "Server":
        pattern = rf"^Completed samples per second\s*:\s*{_NUMBER}"
    elif scenario == "Offline":
        pattern = rf"^Samples per second\s*:\s*{_NUMBER}"
    else:
        pattern = None
    if pattern:
        for line in lines:
            m = re.search(pattern, line)
            if m:
                score = float(m.group(1))
                break
    return Summary(scenario, valid, score)


def verify_performance(test: str, reference_summary: Path, test_summary: Path) -> Verdict:
    out = ["Verifying performance."]

    def fail(reason: str) -> Verdict:
        return Verdict(False, "\n".join([*out, f"TEST FAIL: {reason}"]) + "\n")

    if not Path(reference_summary).is_file():
        return fail(f"Reference results not found ({reference_summary})")
    if not Path(test_summary).is_file():
        return fail(f"Test results not found ({test_summary})")
    ref, tst = read_summary(reference_summary), read_summary(test_summary)
    if not ref.valid:
        return fail("Reference results are invalid")
    if not tst.valid:
        return fail("Test results are invalid")
    if ref.scenario != tst.scenario:
        return fail("Test and reference scenarios do not match!")
    if ref.score is None or tst.score is None:
        return fail("Score not found in summary")
    scenario = ref.scenario or ""
    out += [f"reference score = {ref.score:g}", f"test score = {tst.score:g}"]
    limits = rules.VERIFY_THRESHOLDS[test]
    short = rules.SHORT_LATENCY_NS.get(scenario)
    threshold = limits.short_latency_threshold if short is not None and ref.score <= short \
        else limits.threshold
    out.append(f"threshold = {threshold:g}")
    r, t = ref.score, tst.score
    streaming = scenario in ("SingleStream", "MultiStream")
    if test == "TEST01":
        passed = r * (1 - threshold) < t < r * (1 + threshold)
    elif test == "TEST04":
        if streaming:
            r, t = 1e9 / r, 1e9 / t
        passed = t < r * (1 + threshold)
    elif test == "TEST05":
        passed = t < r * (1 + threshold) if streaming else t > r * (1 - threshold)
    else:
        raise ValueError(test)
    verdict = "TEST PASS" if passed else "TEST FAIL: Test score invalid"
    return Verdict(passed, "\n".join([*out, verdict]) + "\n")


def verify_accuracy(reference_log: Path, test_log: Path, dtype: str) -> Verdict:
    """TEST01: the audit run's logged responses against the accuracy run's."""
    out = ["Verifying accuracy."]
    if not Path(reference_log).is_file():
        return Verdict(False, f"{out[0]}\nTEST FAIL: accuracy run log not found ({reference_log})\n")
    if not Path(test_log).is_file():
        return Verdict(False, f"{out[0]}\nTEST FAIL: audit run accuracy log not found ({test_log})\n")
    acc = json.loads(Path(reference_log).read_text(encoding="utf-8"))
    perf = json.loads(Path(test_log).read_text(encoding="utf-8"))
    results: dict[int, str] = {}
    dup = acc_mismatch = match = perf_mismatch = missing = 0
    for sample in acc:
        idx, data = sample["qsl_idx"], sample["data"]
        if idx in results:
            dup += 1
            acc_mismatch += results[idx] != data
        else:
            results[idx] = data
    for sample in perf:
        idx = sample["qsl_idx"]
        data = np.frombuffer(bytes.fromhex(sample["data"]), dtype=dtype)
        if idx in results:
            match += 1
            ref = np.frombuffer(bytes.fromhex(results[idx]), dtype=dtype)
            if ref.size == 0 or data.size == 0:
                perf_mismatch += ref.size != data.size
            elif data[0] != ref[0]:
                perf_mismatch += 1
        else:
            missing += 1
        results[idx] = sample["data"]
    out += [
        f"num_acc_log_entries = {len(acc)}",
        f"num_acc_log_duplicate_keys = {dup}",
        f"num_acc_log_data_mismatch = {acc_mismatch}",
        f"num_perf_log_entries = {len(perf)}",
        f"num_perf_log_qsl_idx_match = {match}",
        f"num_perf_log_data_mismatch = {perf_mismatch}",
        f"num_missing_qsl_idxs = {missing}",
    ]
    passed = perf_mismatch == 0 and match > 0
    return Verdict(passed, "\n".join([*out, "TEST PASS" if passed else "TEST FAIL"]) + "\n")
