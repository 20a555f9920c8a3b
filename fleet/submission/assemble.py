"""Merge every host's raw results into one official v3.1 tree: `<div>/<org>/...`.

The tree is built in a temporary directory next to its destination, searched for private
inventory data, and only then moved into place, so a failed assembly never leaves half a
tree and never destroys the previous one. Raw logs are never modified: the untruncated
accuracy logs stay in raw/. What was assembled (and which results are smoke runs or
synthetic) is recorded in `<run_dir>/assembly.json` for `fleet check` and the reports.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fleet
from fleet import logparse
from fleet.errors import SubmissionError
from fleet.harness.rules import v3_1 as rules
from fleet.submission import accuracylog, measurement, paths, privacy, sysjson
from fleet.submission.rawrun import RawHost, load_hosts, safe_name

RECORD_VERSION = 1
_HARNESS_SRC = Path(__file__).resolve().parents[1] / "harness"


@dataclass
class AssembledResult:
    key: str  # <sys>/<model>/<scen>
    system: str
    task: str
    model: str
    scenario: str
    implementation: str
    profile: str
    smoke: bool
    synthetic: bool
    modes: list[str] = field(default_factory=list)
    accuracy_sha256: str | None = None


@dataclass
class Assembly:
    """What one assembly put where; serialized as <run_dir>/assembly.json."""

    run_id: str
    tree: str
    division: str
    submitter: str
    created: str
    systems: dict[str, dict[str, str]] = field(default_factory=dict)
    expected: list[str] = field(default_factory=list)
    results: list[AssembledResult] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    record_version: int = RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def read_record(path: Path) -> dict[str, Any] | None:
    """The assembly record at `path`, or None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("record_version") == RECORD_VERSION else None


def tree_of_run(run_dir: Path) -> Path:
    """Where a run's tree was assembled (the record knows a --out), refusing a missing one."""
    record = read_record(Path(run_dir) / paths.ASSEMBLY_RECORD)
    tree = Path(record["tree"]) if record and record.get("tree") else Path(run_dir) / paths.TREE_DIR
    if not paths.is_tree(tree):
        raise SubmissionError(
            f"run {Path(run_dir).name} has no submission tree yet: run `fleet submit` first"
        )
    return tree


def _copy(src: Path, dest_dir: Path, name: str | None = None) -> bool:
    if src.is_symlink():
        # collect never makes links; following one could publish any file of the controller.
        raise SubmissionError(f"{src} is a symbolic link: collect the node's results again")
    if not src.is_file():
        return False
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest_dir / (name or src.name))
    return True


def _copy_logs(src: Path, dest: Path) -> None:
    """Exactly the LoadGen files a run_1 directory may hold (summary + detail)."""
    for name in (paths.SUMMARY, paths.DETAIL):
        _copy(src / name, dest)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _runs_by_scenario(host: RawHost) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for run in host.runs:
        grouped.setdefault((run["task"], run["scenario"]), {})[run["mode"]] = run
    return grouped


class _Builder:
    def __init__(self, run_dir: Path, root: Path, division: str, submitter: str, run_id: str) -> None:
        self.run_dir = run_dir
        self.org = root / division / submitter
        self.division = division
        self.submitter = submitter
        self.run_id = run_id
        self.code_done: set[tuple[str, str]] = set()

    def host(self, host: RawHost, assembly: Assembly) -> None:
        system = host.system_name
        _write(
            self.org / "systems" / f"{system}.json",
            json.dumps(sysjson.build_system_json(host, self.division, self.submitter), indent=2) + "\n",
        )
        assembly.systems[system] = {"category": host.category, "raw": host.name}
        # Expected: every planned (task, scenario), and in closed every required scenario too.
        for task in host.tasks():
            model = rules.model_for_task(task)
            planned = {r["scenario"] for r in host.runs if r["task"] == task}
            if self.division != "open":
                planned |= set(model.scenarios_for(host.category))
            assembly.expected += [f"{system}/{model.name}/{scen}" for scen in sorted(planned)]
        for (task, scen), runs in sorted(_runs_by_scenario(host).items()):
            self.result(host, task, scen, runs, assembly)

    def result(
        self, host: RawHost, task: str, scen: str, runs: dict[str, dict[str, Any]], assembly: Assembly
    ) -> None:
        model = rules.model_for_task(task)
        key = f"{host.system_name}/{model.name}/{scen}"
        perf = runs.get("performance")
        if not perf or perf.get("outcome") != "ok" or not (host.run_path(perf) / paths.DETAIL).is_file():
            reason = (perf or {}).get("error") or "no successful performance run"
            assembly.skipped.append({"key": key, "reason": str(reason)})
            return
        rel = Path(host.system_name) / model.name / scen
        impl = measurement.implementation(perf)
        _copy_logs(host.run_path(perf), self.org / "results" / rel / "performance" / "run_1")
        modes = ["performance"]
        digest = None
        acc = runs.get("accuracy")
        if acc and acc.get("outcome") == "ok":
            digest = self.accuracy(host.run_path(acc), self.org / "results" / rel / "accuracy")
            modes.append("accuracy")
        for test in model.compliance_tests:
            run = runs.get(test)
            if run and run.get("outcome") == "ok" and self.compliance(host, task, scen, test, rel):
                modes.append(test)
        self.measurements(host, perf, rel, impl)
        self.code(model.name, impl)
        smoke = perf.get("profile") == "smoke"
        synthetic = any(bool(r.get("synthetic")) for r in runs.values())
        assembly.results.append(
            AssembledResult(
                key,
                host.system_name,
                task,
                model.name,
                scen,
                impl,
                str(perf.get("profile") or ""),
                smoke,
                synthetic,
                modes,
                digest,
            )
        )

    def accuracy(self, src: Path, dest: Path) -> str | None:
        for name in (paths.SUMMARY, paths.DETAIL):
            _copy(src / name, dest)
        if not (src / paths.ACCURACY_JSON).is_file():
            return None
        dest.mkdir(parents=True, exist_ok=True)
        text = (
            (src / paths.ACCURACY_TXT).read_text(encoding="utf-8")
            if (src / paths.ACCURACY_TXT).is_file()
            else ""
        )
        return accuracylog.write_truncated(src / paths.ACCURACY_JSON, dest, text)

    def compliance(self, host: RawHost, task: str, scen: str, test: str, rel: Path) -> bool:
        src = host.path / task / scen / test
        dest = self.org / "compliance" / rel / test
        if not (src / "performance" / "run_1" / paths.DETAIL).is_file():
            return False
        _copy_logs(src / "performance" / "run_1", dest / "performance" / "run_1")
        _copy(src / paths.VERIFY_PERFORMANCE, dest)
        if test == "TEST01":
            _copy(src / paths.VERIFY_ACCURACY, dest)
            acc_json = src / "accuracy" / paths.ACCURACY_JSON
            if acc_json.is_file():
                (dest / "accuracy").mkdir(parents=True, exist_ok=True)
                accuracylog.write_truncated(acc_json, dest / "accuracy", None)
            # The non-determinism fallback files belong only beside a verify that did not pass
            # (with TEST PASS the directory must hold exactly the log and accuracy.txt).
            verify = src / paths.VERIFY_ACCURACY
            if verify.is_file() and not logparse.parse_verify(verify).passed:
                for extra in (paths.BASELINE_ACCURACY, paths.COMPLIANCE_ACCURACY):
                    found = src / "accuracy" / extra
                    _copy(found if found.is_file() else src / extra, dest / "accuracy")
        return True

    def measurements(self, host: RawHost, perf: dict[str, Any], rel: Path, impl: str) -> None:
        dest = self.org / "measurements" / rel
        scen = perf["scenario"]
        data = measurement.measurement_json(perf)
        _write(dest / f"{host.system_name}_{impl}_{scen}.json", json.dumps(data, indent=2) + "\n")
        smoke = perf.get("profile") == "smoke"
        _write(
            dest / "README.md", measurement.readme(host.system_name, host.category, perf, smoke, self.run_id)
        )
        for name in ("user.conf", "mlperf.conf"):
            _copy(host.run_path(perf) / name, dest)

    def code(self, model: str, impl: str) -> None:
        if (model, impl) in self.code_done:
            return
        self.code_done.add((model, impl))
        dest = self.org / "code" / model / impl
        _write(
            dest / "README.md",
            f"# {model}, {impl}\n\nThe LoadGen harness of mlperf-fleet {fleet.__version__} "
            "(`fleet/harness`): the SUT, QSL and backends that ran this benchmark. "
            "Install with `pip install 'mlperf-fleet[node]'` and run "
            "`python -m fleet.harness run --spec spec.json --out DIR`.\n",
        )
        for src in sorted(_HARNESS_SRC.rglob("*.py")):
            relative = src.relative_to(_HARNESS_SRC)
            if any(part.startswith((".", "__pycache__")) for part in relative.parts) or " " in str(relative):
                continue
            if src.stat().st_size and src.stat().st_size < 1 << 20:
                (dest / "harness" / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest / "harness" / relative)

    def readme(self, root: Path, assembly: Assembly) -> None:
        smoke = sum(r.smoke for r in assembly.results)
        synthetic = sum(r.synthetic for r in assembly.results)
        lines = [
            f"# MLPerf Inference {rules.ROUND} submission of {self.submitter}",
            "",
            f"Merged by mlperf-fleet {fleet.__version__} from run `{self.run_id}`: "
            f"{len(assembly.systems)} systems, {len(assembly.results)} results "
            f"in the {self.division} division.",
            "",
        ]
        if smoke:
            lines += [f"- {smoke} results are smoke-profile runs: not valid submission results.", ""]
        if synthetic:
            lines += [f"- {synthetic} results use synthetic models and datasets: not real results.", ""]
        lines += ["| system | model | scenario | profile | synthetic |", "|---|---|---|---|---|"]
        for r in assembly.results:
            lines.append(
                f"| {r.system} | {r.model} | {r.scenario} | {r.profile} | {'yes' if r.synthetic else 'no'} |"
            )
        _write(root / "README.md", "\n".join(lines) + "\n")


def _prune_empty_dirs(root: Path) -> None:
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda item: -len(item[0])):
        if Path(dirpath) != root and not any(Path(dirpath).iterdir()):
            Path(dirpath).rmdir()


def _swap_into_place(built: Path, out: Path) -> None:
    """Replace `out` by `built`; if the second rename fails the previous tree comes back."""
    if not out.exists():
        os.replace(built, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.replace(out, old / "tree")
    try:
        os.replace(built, out)
    except OSError:
        os.replace(old / "tree", out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def default_division(run_dir: str | Path) -> str:
    """closed, or open when any result of the run used synthetic assets (never closed silently)."""
    synthetic = any(r.get("synthetic") for host in load_hosts(Path(run_dir)) for r in host.runs)
    return "open" if synthetic else "closed"


def _check_synthetic(hosts: list[RawHost], division: str, allow: bool) -> list[str]:
    systems = sorted({h.system_name for h in hosts for r in h.runs if r.get("synthetic")})
    if not systems:
        return []
    if division == "closed" and not allow:
        raise SubmissionError(
            f"results of {', '.join(systems)} use synthetic models/datasets and cannot go into the closed "
            "division; use --division open, or --allow-synthetic-in-closed if you really mean it"
        )
    return [f"synthetic assets on {', '.join(systems)} (division {division})"]


def assemble_submission(
    run_dir: str | Path,
    submitter: str,
    division: str = "closed",
    out: str | Path | None = None,
    include_synthetic_in_closed: bool = False,
) -> Path:
    """Build `<out>/<division>/<submitter>/...` from runs/<run>/raw/; returns the tree root."""
    run_dir = Path(run_dir)
    if division not in ("closed", "open"):
        raise SubmissionError(f"division {division!r} is not supported: use closed or open")
    if not submitter or safe_name(submitter) != submitter:
        raise SubmissionError(
            f"submitter {submitter!r} must be a plain directory name (letters, digits, '.', '_', '-'; "
            "no spaces, no leading dot)"
        )
    hosts = load_hosts(run_dir)
    notes = _check_synthetic(hosts, division, include_synthetic_in_closed)
    out = Path(out) if out else run_dir / paths.TREE_DIR
    out.parent.mkdir(parents=True, exist_ok=True)
    run_id = paths.run_id(run_dir)
    assembly = Assembly(
        run_id=run_id,
        tree=str(out.resolve()),
        division=division,
        submitter=submitter,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        notes=notes,
    )
    built = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.build-"))
    built.chmod(0o755)
    try:
        builder = _Builder(run_dir, built, division, submitter, run_id)
        for host in hosts:
            builder.host(host, assembly)
        builder.readme(built, assembly)
        _prune_empty_dirs(built)
        leaks = privacy.find_leaks(built, privacy.private_strings(hosts, run_dir))
        if leaks:
            path, secret, origin = leaks[0]
            raise SubmissionError(
                f"private data would be published: {secret!r} ({origin}) appears in "
                f"{path.relative_to(built)} (and {len(leaks) - 1} more places); remove it from the node's "
                "output or choose it as the system name"
            )
        _swap_into_place(built, out)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    record = run_dir / paths.ASSEMBLY_RECORD
    tmp = record.with_suffix(".json.tmp")
    tmp.write_text(assembly.to_json(), encoding="utf-8")
    os.replace(tmp, record)
    return out
