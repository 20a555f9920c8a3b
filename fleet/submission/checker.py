"""The built-in v3.1 checker: every rule of the official checker plus section 12's extras.

`check_tree` walks `<root>/<div>/<org>/results/<sys>/<model>/<scen>` like the official
checker, derives the measurements, compliance and code paths from there, and counts the
results that pass against the results expected (from the assembly record, the caller, or
the required scenarios of each system). One line per problem names the file and the rule.
The default profile is the full rules; `profile="smoke"` relaxes only the duration and
count rules, and the verdict says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.errors import SubmissionError
from fleet.harness.rules import v3_1 as rules
from fleet.submission import checks, paths
from fleet.submission.assemble import read_record, tree_of_run
from fleet.submission.checks import Sink
from fleet.submission.findings import PERSON, PROFILES, RULE, WARNING, Finding, Thresholds


@dataclass
class CheckReport:
    root: Path
    profile: str
    findings: list[Finding] = field(default_factory=list)
    results: list[str] = field(default_factory=list)  # <sys>/<model>/<scen> that pass
    present: list[str] = field(default_factory=list)  # result directories found
    expected: list[str] = field(default_factory=list)
    smoke: list[str] = field(default_factory=list)  # results the assembler recorded as smoke runs
    synthetic: list[str] = field(default_factory=list)
    # Results that pass but for their systems json's fields a person must set.
    awaiting_person: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """What fails the check: rule problems, and under the full rules the person fields too.

        A smoke tree can never be a submission, so there the fields a person must set are what
        a submission still needs, not a failure of the run.
        """
        relaxed = PROFILES[self.profile].relaxed
        return [f.render() for f in self.findings
                if f.kind == RULE or (f.kind == PERSON and not relaxed)]

    @property
    def warnings(self) -> list[str]:
        return [f.render() for f in self.findings if f.kind == WARNING]

    @property
    def ok(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        limits = PROFILES[self.profile]
        rules_label = (
            "the full v3.1 rules"
            if not limits.relaxed
            else "smoke thresholds (duration, query and sample counts relaxed)"
        )
        person_count = sum(1 for f in self.findings if f.kind == PERSON)
        if self.ok and limits.relaxed:
            passed = len(set(self.results) | set(self.awaiting_person))
            line = (f"VERDICT: PASS under {rules_label}: {passed} of {len(self.expected)} expected results "
                    "pass (VALID runs, complete logs, accuracy scored); NOT a v3.1 submission: that needs "
                    "fleet run --profile submission")
            if person_count:
                line += (f" and the {person_count} systems fields only a person can state (fleet_system in "
                         "the inventory)")
            return line
        if self.ok:
            counts = f"{len(self.results)} of {len(self.expected)} expected results pass"
            return f"VERDICT: PASS under {rules_label}: {counts}"
        rule_count = sum(1 for f in self.findings if f.kind == RULE)
        parts = []
        if rule_count:
            parts.append(f"{rule_count} rule problems")
        if person_count:
            parts.append(f"{person_count} fields need a person")
        return f"VERDICT: FAIL under {rules_label}: {', '.join(parts)}"

    def render(self) -> str:
        limits = PROFILES[self.profile]
        lines = [f"fleet check {self.root} (profile {self.profile})"]
        rule_lines = [f.render() for f in self.findings if f.kind == RULE]
        person_lines = [f.render() for f in self.findings if f.kind == PERSON]
        if rule_lines:
            lines += ["", "Problems:", *rule_lines]
        if person_lines:
            lines += [
                "",
                "Needs a person (set with fleet_system in the inventory, then fleet submit again):",
                *person_lines,
            ]
        if self.warnings:
            lines += ["", "Warnings (do not fail the official checker):", *self.warnings]
        missing = sorted(set(self.expected) - set(self.present))
        lines += [
            "",
            f"Results: {len(self.expected)} expected, {len(self.present)} present, {len(self.results)} pass"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        ]
        if self.smoke:
            lines.append(
                f"Smoke-profile results: {len(self.smoke)} of {len(self.present)}"
                + (
                    " (they cannot pass the full rules: short runs and small counts by design; "
                    "`fleet check --profile smoke` checks them with smoke thresholds)"
                    if not limits.relaxed
                    else ""
                )
            )
        if self.synthetic:
            lines.append(f"Synthetic-asset results: {len(self.synthetic)} (not real results)")
        lines.append(self.verdict())
        return "\n".join(lines) + "\n"


def _record_for(root: Path) -> dict[str, Any] | None:
    record = read_record(root.parent / paths.ASSEMBLY_RECORD)
    if record and Path(record.get("tree", "")).resolve() == root.resolve():
        return record
    return None


def _model_mapping(org: Path) -> dict[str, str]:
    try:
        data = json.loads((org / "model_mapping.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


class _Walker:
    def __init__(self, root: Path, limits: Thresholds) -> None:
        self.root = root
        self.limits = limits
        self.sink = Sink(root)
        self.present: list[str] = []
        self.derived_expected: list[str] = []
        self.passing: dict[str, tuple[str, str]] = {}  # key -> (<div>/<org>, system)

    def walk(self) -> None:
        for division in checks.check_root(self.root, self.sink):
            for org in checks.check_division(division, self.sink):
                self.org(division.name, org)

    def org(self, division: str, org: Path) -> None:
        checks.check_hygiene(org, self.sink)
        results = org / "results"
        if not results.is_dir():
            self.sink.add(
                org, "no-results", "has no results/ directory: the official checker skips it silently"
            )
            return
        mapping = _model_mapping(org) if division == "open" else {}
        for system_dir in sorted(p for p in results.iterdir() if p.is_dir()):
            system = system_dir.name
            data = checks.check_system_json(org / "systems" / f"{system}.json", division, org.name, self.sink)
            system_type = str((data or {}).get("system_type") or "")
            for model_dir in sorted(p for p in system_dir.iterdir() if p.is_dir()):
                self.model(division, org, system, system_type, model_dir, mapping)

    def model(
        self,
        division: str,
        org: Path,
        system: str,
        system_type: str,
        model_dir: Path,
        mapping: dict[str, str],
    ) -> None:
        name = mapping.get(model_dir.name) or checks.MODEL_ALIASES.get(model_dir.name, model_dir.name)
        model = rules.MODELS.get(name)
        if model is None:
            self.sink.add(
                model_dir,
                "model-name",
                f"{model_dir.name} is not a v3.1 benchmark ({', '.join(rules.MODELS)})",
            )
            return
        required = (
            checks.required_scenarios(model, system_type)
            if system_type in checks.sysjson.SYSTEM_TYPES
            else ()
        )
        if required is None:
            self.sink.add(
                model_dir, "model-not-allowed", f"{model.name} is not allowed on a {system_type} system"
            )
            return
        # Without an assembly record: closed needs the required scenarios, open what is there.
        present = [d.name for d in model_dir.iterdir() if d.is_dir()]
        for scen in present if division == "open" else required:
            self.derived_expected.append(f"{system}/{model_dir.name}/{scen}")
        passing: set[str] = set()
        for scen_dir in sorted(p for p in model_dir.iterdir() if p.is_dir()):
            scenario = checks.SCENARIO_DIRS.get(scen_dir.name)
            if scenario is None:
                self.sink.add(scen_dir, "scenario-name", "is not a scenario directory name")
                continue
            if division != "open" and required and scenario not in required:
                self.sink.add(
                    scen_dir,
                    "scenario-not-required",
                    f"{scenario} is not required for {model.name} "
                    f"on {system_type} (required: {', '.join(required)})",
                )
            if self.result(division, org, system, model, model_dir.name, scen_dir):
                passing.add(scenario)
        if division != "open":
            for scen in required:
                if (
                    scen not in passing
                    and not (model_dir / scen).is_dir()
                    and not (model_dir / scen.lower()).is_dir()
                ):
                    self.sink.add(
                        model_dir,
                        "missing-scenario",
                        f"required scenario {scen} is missing "
                        f"({model.name} on {system_type} needs {', '.join(required)})",
                    )

    def result(
        self, division: str, org: Path, system: str, model: rules.ModelRules, model_dir: str, scen_dir: Path
    ) -> bool:
        key = f"{system}/{model_dir}/{scen_dir.name}"
        self.present.append(key)
        before = len(self.sink.findings)
        perf = scen_dir / "performance" / "run_1"
        if (scen_dir / "performance" / "power").exists():
            self.sink.add(
                scen_dir / "performance" / "power", "power", "fleet does not make power submissions"
            )
        if checks.check_file_set(perf, {paths.SUMMARY, paths.DETAIL}, {paths.ACCURACY_JSON}, self.sink):
            checks.check_performance_log(perf / paths.DETAIL, scen_dir.name, model, self.limits, self.sink)
        checks.check_accuracy_dir(scen_dir / "accuracy", scen_dir.name, model, division, self.sink)
        checks.check_measurements(org, system, model_dir, scen_dir.name, self.sink)
        if division != "open" and not (
            "gptj" in model_dir and not (org / "compliance" / system / model_dir).exists()
        ):
            comp = org / "compliance" / system / model_dir / scen_dir.name
            checks.check_compliance(comp, scen_dir.name, model, self.limits, self.sink)
        failed = any(f.kind != WARNING for f in self.sink.findings[before:])
        if not failed:
            self.passing[key] = (f"{division}/{org.name}", system)
        return not failed


def _system_failures(findings: Iterable[Finding], kinds: tuple[str, ...] = (RULE, PERSON)) -> set[str]:
    """<div>/<org>/<sys> whose systems json has a problem: the official checker drops its results."""
    failed = set()
    for f in findings:
        parts = f.path.split("/")
        if f.kind in kinds and len(parts) == 4 and parts[2] == "systems" and parts[3].endswith(".json"):
            failed.add(f"{parts[0]}/{parts[1]}/{parts[3][: -len('.json')]}")
    return failed


def _org_failures(findings: Iterable[Finding]) -> set[str]:
    """<div>/<org> prefixes with a tree-wide problem: all their results are dropped."""
    tree_rules = {"empty-dir", "hidden-name", "space-in-name", "pycache", "symlink", "file-too-large"}
    return {"/".join(f.path.split("/")[:2]) for f in findings if f.rule in tree_rules}


def check_tree(
    root: str | Path,
    expected: Iterable[str] | None = None,
    profile: str = "submission",
    record: dict[str, Any] | None = None,
) -> CheckReport:
    """Check a submission tree; `expected` lists <sys>/<model>/<scen> keys that must pass.

    `record` is the assembly record (expected results, smoke and synthetic marks); by default
    the one beside the tree (runs/<run>/assembly.json) when it describes this tree.
    """
    root = Path(root)
    if not paths.is_tree(root):
        raise SubmissionError(f"{root} is not a submission tree (no closed/, open/ or network/ inside)")
    if profile not in PROFILES:
        raise SubmissionError(f"unknown profile {profile!r}: use {' or '.join(PROFILES)}")
    walker = _Walker(root, PROFILES[profile])
    walker.walk()
    findings = walker.sink.findings
    record = record if record is not None else _record_for(root)
    if expected is not None:
        expected_keys = list(expected)
    elif record is not None:
        expected_keys = list(record.get("expected") or [])
    else:
        expected_keys = walker.derived_expected
    bad_systems = _system_failures(findings)
    bad_orgs = _org_failures(findings)
    by_rule = _system_failures(findings, (RULE,))
    passing, awaiting = [], []
    for key, (div_org, system) in walker.passing.items():
        if div_org in bad_orgs or f"{div_org}/{system}" in by_rule:
            continue
        (awaiting if f"{div_org}/{system}" in bad_systems else passing).append(key)
    report = CheckReport(
        root=root,
        profile=profile,
        findings=findings,
        results=sorted(passing),
        present=sorted(walker.present),
        expected=sorted(set(expected_keys)),
        awaiting_person=sorted(awaiting),
    )
    if record is not None:
        report.smoke = sorted(r["key"] for r in record.get("results", []) if r.get("smoke"))
        report.synthetic = sorted(r["key"] for r in record.get("results", []) if r.get("synthetic"))
    _count_rule(report)
    return report


def _count_rule(report: CheckReport) -> None:
    """Section 12.1: never trust a clean walk alone; the expected results must all pass."""
    expected = set(report.expected)
    passing = set(report.results)
    if PROFILES[report.profile].relaxed:  # a smoke tree's person fields are the submission's to set
        passing |= set(report.awaiting_person)
    missing = sorted(expected - set(report.present))
    failing = sorted((expected & set(report.present)) - passing)
    if missing or failing:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if failing:
            detail.append(f"{len(failing)} present but failing")
        report.findings.append(
            Finding(
                ".",
                "result-count",
                f"expected {len(expected)} results, {len(passing & expected)} pass ({'; '.join(detail)})",
            )
        )


def check_run(run_dir: str | Path, profile: str = "submission") -> CheckReport:
    """Check a run's assembled tree and write the verdict to runs/<run>/check.txt."""
    run_dir = Path(run_dir)
    record = read_record(run_dir / paths.ASSEMBLY_RECORD)
    report = check_tree(tree_of_run(run_dir), profile=profile, record=record)
    (run_dir / paths.CHECK_FILE).write_text(report.render(), encoding="utf-8")
    return report
