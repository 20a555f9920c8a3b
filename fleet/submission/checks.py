"""The v3.1 checker's rules, one function per kind of directory (reference sections 1-9, 12).

Each function appends Findings to a list; paths in findings are relative to the tree root.
They never raise on bad input: a broken file is a finding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleet import logparse
from fleet.harness.rules import v3_1 as rules
from fleet.submission import paths, sysjson
from fleet.submission.findings import PERSON, RULE, WARNING, Finding, Thresholds
from fleet.submission.measurement import REQUIRED_MEASUREMENT_FIELDS

IGNORED_FILES = {paths.TRACE, "results.json", ".gitkeep"}
# Lowercase scenario directories are inferred results: directory -> scenarios it may come from.
INFERRED = {"offline": ("SingleStream", "MultiStream"), "multistream": ("SingleStream",)}
SCENARIO_DIRS = {**{s: s for s in rules.SCENARIOS}, **{s.lower(): s for s in rules.SCENARIOS}}
MODEL_ALIASES = {"resnet50": "resnet"}
PERFORMANCE_MODES = ("PerformanceOnly", "SubmissionRun")


def _n(value: float | None) -> str:
    """A log number as LoadGen wrote it (64, not 64.0)."""
    if value is None:
        return "missing"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Sink:
    """Collects findings with paths relative to the tree root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.findings: list[Finding] = []

    def add(self, path: Path | str, rule: str, message: str, kind: str = RULE) -> None:
        rel = Path(path)
        if rel.is_absolute():
            rel = rel.relative_to(self.root) if rel != self.root else Path(".")
        self.findings.append(Finding(rel.as_posix(), rule, message, kind))


# -- tree-wide rules (1.1, 1.3) ---------------------------------------------------------------


def check_root(root: Path, sink: Sink) -> list[Path]:
    """Root files and division dirs; returns the division directories to walk."""
    divisions = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            if entry.name in paths.DIVISIONS:
                divisions.append(entry)
            elif entry.name not in (".git", ".github", "assets"):
                sink.add(entry, "unknown-dir", "is not a division (closed, open, network)", WARNING)
        elif not entry.name.endswith((".md", ".pdf")):
            sink.add(entry, "root-file", "only .md and .pdf files may be in the root of the tree")
    return divisions


def check_division(division: Path, sink: Sink) -> list[Path]:
    orgs = []
    for entry in sorted(division.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            orgs.append(entry)
        else:
            sink.add(entry, "division-file", "a division directory may only hold submitter directories")
    return orgs


def check_hygiene(org: Path, sink: Sink) -> None:
    """No dot names, spaces, __pycache__, symlinks, files > 50 MiB or empty dirs (1.3)."""
    for dirpath, dirnames, filenames in os.walk(org):
        here = Path(dirpath)
        if not dirnames and not filenames:
            sink.add(here, "empty-dir", "empty directories are not allowed")
        for name in [*dirnames, *filenames]:
            path = here / name
            if name.startswith("."):
                sink.add(path, "hidden-name", "names starting with '.' are not allowed (.gitkeep included)")
            if " " in name:
                sink.add(path, "space-in-name", "spaces in file or directory names are not allowed")
            if name == "__pycache__":
                sink.add(path, "pycache", "__pycache__ directories are not allowed")
            if path.is_symlink():
                sink.add(path, "symlink", "symbolic links are not allowed")
            elif name in filenames and path.stat().st_size > paths.MAX_FILE_BYTES:
                sink.add(path, "file-too-large", f"{path.stat().st_size} bytes is over the 50 MiB limit")


# -- systems json (5) ---------------------------------------------------------------------------


def check_system_json(path: Path, division: str, org: str, sink: Sink) -> dict[str, Any] | None:
    if not path.is_file():
        sink.add(path, "system-json-missing", "every results/<sys> needs systems/<sys>.json")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        sink.add(path, "system-json-invalid", f"is not valid JSON: {exc}")
        return None
    if not isinstance(data, dict):
        sink.add(path, "system-json-invalid", "must be a JSON object")
        return None
    for name in sysjson.REQUIRED_FIELDS:
        if name not in data:
            sink.add(path, "system-field-missing", f"required field {name} is missing")
    for name, value in data.items():
        if not isinstance(value, str):
            sink.add(
                path,
                "system-field-type",
                f"{name} is {type(value).__name__} {value!r}: every value must be a string",
            )
    accelerated = str(data.get("accelerators_per_node", "0")).strip() not in ("0", "")
    for name in sysjson.MEANINGFUL_FIELDS:
        if name in data and not data[name]:
            person = name in sysjson.NEEDS_A_PERSON or (
                accelerated and name in sysjson.ACCELERATOR_PERSON_FIELDS
            )
            if person:
                sink.add(
                    path,
                    "needs-a-person",
                    f"{name} is empty: set it with fleet_system: {{{name}: ...}} in the inventory",
                    PERSON,
                )
            else:
                sink.add(path, "system-field-empty", f"{name} requires a meaningful value")
    if data.get("division") != division:
        sink.add(
            path, "system-division", f"division is {data.get('division')!r}, the directory says {division!r}"
        )
    if str(data.get("submitter", "")).lower() != org.lower():
        sink.add(
            path, "system-submitter", f"submitter is {data.get('submitter')!r}, the directory says {org!r}"
        )
    status = data.get("status")
    if isinstance(status, str) and status and status.lower() not in sysjson.STATUSES:
        sink.add(path, "system-status", f"status {status!r} must be one of {', '.join(sysjson.STATUSES)}")
    if data.get("system_type") not in sysjson.SYSTEM_TYPES:
        sink.add(
            path,
            "system-type",
            f"system_type {data.get('system_type')!r} must be one of {', '.join(sysjson.SYSTEM_TYPES)}",
        )
    if division == "closed" and str(data.get("is_network", "")).lower() == "true":
        sink.add(path, "system-network", "is_network 'true' belongs in the network division")
    for name in sorted(set(data) - sysjson.KNOWN_FIELDS):
        sink.add(path, "system-field-unknown", f"field {name} is unknown", WARNING)
    return data


def required_scenarios(model: rules.ModelRules, system_type: str) -> tuple[str, ...] | None:
    """Scenarios required on that system type; None when the model is not allowed there."""
    scenarios: list[str] = []
    for category in system_type.split(","):
        allowed = model.scenarios_for(category)
        if not allowed:
            return None
        scenarios += [s for s in allowed if s not in scenarios]
    return tuple(scenarios)


# -- performance and compliance run logs (4) ----------------------------------------------------


def check_file_set(
    directory: Path, required: set[str], optional: set[str], sink: Sink, rule: str = "file-set"
) -> bool:
    if not directory.is_dir():
        sink.add(directory, "missing-file", "directory is missing")
        return False
    present = {p.name for p in directory.iterdir() if p.is_file()} - IGNORED_FILES
    ok = True
    for name in sorted(required - present):
        sink.add(directory / name, "missing-file", "required file is missing")
        ok = False
    for name in sorted(present - required - optional):
        sink.add(
            directory / name, rule, f"not allowed here (allowed: {', '.join(sorted(required | optional))})"
        )
        ok = False
    return ok


def _seeds_for(path: Path) -> rules.Seeds:
    return rules.TEST05_SEEDS if "TEST05" in path.as_posix() else rules.SEEDS


def load_detail(path: Path, sink: Sink) -> logparse.DetailLog | None:
    if not path.is_file():
        return None
    log = logparse.parse_detail(path)
    for line_no, reason in log.invalid_lines[:3]:
        sink.add(path, "log-format", f"line {line_no} is not a valid :::MLLOG record ({reason})")
    if log.errors:
        values = "; ".join(str(e.value)[:120] for e in log.errors[:3])
        sink.add(path, "log-error", f"contains {len(log.errors)} error record(s): {values}")
    return log


def check_performance_log(
    detail: Path, scen_dir: str, model: rules.ModelRules, limits: Thresholds, sink: Sink
) -> logparse.DetailLog | None:
    """check_performance_dir of the v3.1 checker plus section 12's extra rules."""
    log = load_detail(detail, sink)
    if log is None:
        return None
    scenario = log.scenario
    if scenario not in rules.SCENARIOS:
        sink.add(detail, "scenario", f"effective_scenario {scenario!r} is not a v3.1 scenario")
        return log
    if log.validity != "VALID":
        reason = log.get("result_invalid_reason") or ""
        sink.add(
            detail,
            "validity",
            f"result_validity is {log.validity!r}, must be VALID"
            + (f" ({reason.strip()})" if reason else ""),
        )
    expected_seeds = _seeds_for(detail)
    for name in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"):
        found = log.get(f"effective_{name}")
        expected = getattr(expected_seeds, name)
        if found != expected:
            sink.add(detail, "seed", f"effective_{name} is {found}, expected {expected}")
    inferred_from = INFERRED.get(scen_dir)
    if scen_dir in rules.SCENARIOS and scenario != scen_dir:
        sink.add(
            detail, "scenario-mismatch", f"effective_scenario is {scenario}, the directory says {scen_dir}"
        )
    elif inferred_from is not None and scenario not in inferred_from and scenario != SCENARIO_DIRS[scen_dir]:
        sink.add(detail, "scenario-mismatch", f"{scen_dir} cannot be inferred from a {scenario} run")
    if log.test_mode not in PERFORMANCE_MODES:
        sink.add(
            detail,
            "test-mode",
            f"effective_test_mode is {log.test_mode!r}; a performance run needs "
            f"{' or '.join(PERFORMANCE_MODES)}",
        )
    count = log.number("effective_performance_sample_count")
    if limits.check_performance_sample_count and (count is None or count < model.performance_sample_count):
        sink.add(
            detail,
            "performance-sample-count",
            f"effective_performance_sample_count is {_n(count)}, "
            f"needs to be >= {model.performance_sample_count}",
        )
    duration = log.number("effective_min_duration_ms")
    if duration is None:
        sink.add(detail, "min-duration", "effective_min_duration_ms is missing")
    elif duration < limits.min_duration_ms:
        sink.add(
            detail,
            "min-duration",
            f"effective_min_duration_ms is {_n(duration)}, needs to be >= "
            f"{limits.min_duration_ms} ({limits.min_duration_ms // 1000} s)",
        )
    _check_queries(log, detail, scenario, inferred_from is not None, limits, sink)
    if scenario == "Server" and model.server_latency_ns is not None:
        target = log.number("effective_target_latency_ns")
        if target is None or target > model.server_latency_ns:
            sink.add(
                detail,
                "latency-bound",
                f"effective_target_latency_ns is {_n(target)}, the {model.name} Server "
                f"bound is {model.server_latency_ns}",
            )
    if scenario != "Offline" and log.get("early_stopping_met") is False:
        sink.add(detail, "early-stopping", "early_stopping_met is false")
    key, _unit, _div = rules.RESULT_KEYS[scenario]
    if log.number(key) is None:
        sink.add(detail, "result-missing", f"{key} is missing or not a number")
    return log


def _check_queries(
    log: logparse.DetailLog, detail: Path, scenario: str, inferred: bool, limits: Thresholds, sink: Sink
) -> None:
    if scenario == "Offline":
        spq = log.number("effective_samples_per_query")
        if not inferred and (spq is None or spq < limits.offline_min_samples_per_query):
            sink.add(
                detail,
                "min-queries",
                f"the Offline query has {_n(spq)} samples (effective_samples_per_query), "
                f"needs >= {limits.offline_min_samples_per_query}",
            )
        minimum = limits.min_queries.get("Offline", 1)
        min_count = log.number("effective_min_query_count")
        if min_count is None or min_count < minimum:
            sink.add(
                detail, "min-queries", f"effective_min_query_count is {_n(min_count)}, needs >= {minimum}"
            )
        return
    minimum = limits.min_queries.get(scenario, 0)
    queries = log.number("result_query_count")
    if queries is None:
        queries = log.number("effective_min_query_count")
    if minimum and (queries is None or queries < minimum):
        sink.add(detail, "min-queries", f"{_n(queries)} queries were run, {scenario} needs >= {minimum}")


# -- accuracy (3, 8) ------------------------------------------------------------------------------


def check_accuracy_dir(
    acc_dir: Path, scen_dir: str, model: rules.ModelRules, division: str, sink: Sink
) -> bool:
    """True when the accuracy meets the target (warnings only in open)."""
    if not acc_dir.is_dir():
        sink.add(acc_dir, "missing-file", "accuracy directory is missing")
        return False
    check_file_set(
        acc_dir, {paths.SUMMARY, paths.DETAIL, paths.ACCURACY_TXT, paths.ACCURACY_JSON}, set(), sink
    )
    ok = True
    log = load_detail(acc_dir / paths.DETAIL, sink)
    if log is not None:
        if log.errors or not log.readable:
            ok = False
        if log.test_mode != "AccuracyOnly":
            sink.add(
                acc_dir / paths.DETAIL,
                "test-mode",
                f"effective_test_mode is {log.test_mode!r}, an accuracy run needs AccuracyOnly",
            )
        expected_scen = SCENARIO_DIRS.get(scen_dir)
        if scen_dir in rules.SCENARIOS and log.scenario != expected_scen:
            sink.add(
                acc_dir / paths.DETAIL,
                "scenario-mismatch",
                f"effective_scenario is {log.scenario}, the directory says {scen_dir}",
            )
    acc_json = acc_dir / paths.ACCURACY_JSON
    if acc_json.is_file() and acc_json.stat().st_size > paths.MAX_ACCURACY_LOG_BYTES:
        sink.add(
            acc_json,
            "accuracy-log-size",
            f"{acc_json.stat().st_size} bytes: not truncated (limit {paths.MAX_ACCURACY_LOG_BYTES})",
        )
        ok = False
    txt = acc_dir / paths.ACCURACY_TXT
    if not txt.is_file():
        return False
    parsed = logparse.parse_accuracy(txt, [(m.name, m.pattern) for m in model.accuracy])
    if parsed.hash is None:
        sink.add(txt, "accuracy-hash", "no hash=<sha256> line (made by fleet submit from the full log)")
        ok = False
    kind = WARNING if division == "open" else RULE
    for metric in model.accuracy:
        values = parsed.metrics.get(metric.name)
        if not values:
            sink.add(txt, "accuracy-format", f"no line matches the {metric.name} pattern {metric.pattern}")
            ok = False
            continue
        low = [v for v in values if v < metric.threshold]
        if low:
            sink.add(
                txt, "accuracy", f"{metric.name} {low[0]:g} is below the target {metric.threshold:g}", kind
            )
            ok = ok and kind == WARNING
    return ok


# -- measurements and code (1.5, 6) ---------------------------------------------------------------


def find_measurement_json(meas_dir: Path, system: str, scen_dir: str) -> list[Path]:
    candidates = sorted(p for p in meas_dir.glob(f"{system}*_{scen_dir}.json") if p.is_file())
    return candidates or sorted(p for p in meas_dir.glob(f"{system}*.json") if p.is_file())


def check_measurements(org: Path, system: str, model_dir: str, scen_dir: str, sink: Sink) -> None:
    meas = org / "measurements" / system / model_dir / scen_dir
    if not meas.is_dir():
        sink.add(meas, "missing-file", "measurements directory is missing")
        return
    for name in ("README.md", "user.conf", "mlperf.conf"):
        path = meas / name
        if not path.is_file():
            sink.add(path, "missing-file", "required file is missing")
        elif path.stat().st_size == 0:
            sink.add(path, "empty-file", "must not be empty")
    found = find_measurement_json(meas, system, scen_dir)
    if not found:
        sink.add(meas, "measurement-json", f"no {system}_<impl>_{scen_dir}.json")
        return
    if len(found) > 1:
        sink.add(meas, "measurement-json", f"{len(found)} measurement jsons; keep exactly one")
    path = found[0]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        sink.add(path, "measurement-json", f"is not valid JSON: {exc}")
        return
    for name in REQUIRED_MEASUREMENT_FIELDS:
        if not isinstance(data, dict) or not data.get(name):
            sink.add(path, "measurement-field", f"{name} requires a meaningful value")
    stem = path.name[: -len(".json")]
    suffix = f"_{scen_dir}"
    impl = stem[len(system) + 1 : -len(suffix)] if stem.endswith(suffix) else stem[len(system) + 1 :]
    code = org / "code" / model_dir
    if code.is_file():
        code = org / "code" / code.read_text(encoding="utf-8").strip()
    if not (code / impl).is_dir() and not code.is_dir():
        sink.add(meas, "code-missing", f"code/{model_dir}/{impl} (or code/{model_dir}) is missing")


# -- compliance (7.3) -----------------------------------------------------------------------------


def check_compliance(
    comp_dir: Path, scen_dir: str, model: rules.ModelRules, limits: Thresholds, sink: Sink
) -> None:
    if not model.compliance_tests:
        return
    if not comp_dir.is_dir():
        sink.add(
            comp_dir,
            "compliance-missing",
            f"compliance directory is missing ({', '.join(model.compliance_tests)})",
        )
        return
    for test in model.compliance_tests:
        test_dir = comp_dir / test
        if not test_dir.is_dir():
            sink.add(test_dir, "compliance-missing", f"{test} is required for {model.name}")
            continue
        run = test_dir / "performance" / "run_1"
        if check_file_set(run, {paths.SUMMARY, paths.DETAIL}, {paths.ACCURACY_JSON}, sink):
            check_performance_log(run / paths.DETAIL, scen_dir, model, limits, sink)
        verify = test_dir / paths.VERIFY_PERFORMANCE
        if not verify.is_file():
            sink.add(verify, "missing-file", "required file is missing")
        else:
            result = logparse.parse_verify(verify)
            if not result.passed:
                sink.add(
                    verify,
                    "compliance-fail",
                    f"{test} performance verification failed"
                    + (f" ({result.verdict})" if result.verdict else " (no TEST PASS)"),
                )
        if test == "TEST01":
            _check_test01_accuracy(test_dir, model, sink)


def _check_test01_accuracy(test_dir: Path, model: rules.ModelRules, sink: Sink) -> None:
    verify = test_dir / paths.VERIFY_ACCURACY
    if not verify.is_file():
        sink.add(verify, "missing-file", "required file is missing")
        return
    passed = logparse.parse_verify(verify).passed
    required = {paths.ACCURACY_JSON, paths.ACCURACY_TXT}
    if not passed:
        required |= {paths.BASELINE_ACCURACY, paths.COMPLIANCE_ACCURACY}
    acc = test_dir / "accuracy"
    if not check_file_set(acc, required, set(), sink) or passed:
        return
    limit = 0.1 if "99.9" in model.name else 1.0
    patterns = [(m.name, m.pattern) for m in model.accuracy]
    base = logparse.parse_accuracy(acc / paths.BASELINE_ACCURACY, patterns)
    comp = logparse.parse_accuracy(acc / paths.COMPLIANCE_ACCURACY, patterns)
    for metric in model.accuracy:
        b, c = base.first(metric.name), comp.first(metric.name)
        if not b or not c or abs(1 - b / c) * 100 > limit:
            sink.add(
                acc,
                "compliance-fail",
                f"TEST01 {metric.name}: baseline {b} vs compliance {c} differ by more than {limit}%",
            )
