"""Fixture factory: real LoadGen output laid out as `runs/<run>/raw/<host>/` (docs/contracts.md).

Two sources, both real LoadGen runs:
* `make_harness_out` runs the node harness itself (`python -m fleet.harness synth` + `run`,
  synthetic small ResNet50, smoke profile). Its timings are real, so on a busy 2-core
  machine its audit verdicts and Server validity vary from run to run, and all four
  scenarios take minutes (MultiStream alone ~70 s). Tests use it for Offline only and assert
  what must hold whatever the timing: the layout contract, and that the checker agrees with
  the harness's own verdicts.
* `make_logset` (lgsut.py, a minimal numpy SUT, every scenario x mode in ~8 s) gives
  deterministic trees for the pass/defect tests, plus real defect variants (wrong seed,
  INVALID run, broken accuracy). It post-processes like the harness: accuracy.txt from the
  full log (no hash line), TEST01 verify_accuracy.txt by comparing responses, and
  verify_performance.txt in the official format with the real scores; its verdict is TEST
  PASS when the audit run is VALID and in the same scenario (the score thresholds are the
  harness's job, tested there).

`build_run` / `build_run_from_harness` copy one output into any number of hosts with
node.json (and, for the logset, manifest.json), including private inventory data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fleet import logparse
from fleet.harness.rules import v3_1 as rules

HERE = Path(__file__).resolve().parent
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = ("performance", "accuracy", "TEST01", "TEST04", "TEST05")
# Extra real runs for defect tests: name -> (scenario, mode, overrides).
VARIANTS = {
    "wrong_seed": ("Offline", "performance", {"qsl_rng_seed": 1}),
    "invalid": ("Offline", "performance", {"qps": 100, "expect_invalid": True}),
    "broken_accuracy": ("Offline", "accuracy", {"broken": True}),
}

# What an inventory's fleet_system would set: the fields no fact can provide.
PERSON_FIELDS = {
    "status": "available",
    "host_memory_configuration": "1x 32GB DDR4",
    "host_storage_capacity": "512 GB",
    "host_storage_type": "NVMe SSD",
    "host_networking": "Ethernet 1 Gbit/s",
    "host_network_card_count": "1",
    "host_networking_topology": "N/A",
    "cooling": "air",
}


def _labels() -> np.ndarray:
    sys.path.insert(0, str(HERE))
    import lgsut

    return lgsut.LABELS


def _run_dir(base: Path, mode: str) -> Path:
    if mode == "performance":
        return base / "performance" / "run_1"
    if mode == "accuracy":
        return base / "accuracy"
    return base / mode / "performance" / "run_1"


def _accuracy_fraction(log_path: Path) -> tuple[int, int]:
    labels = _labels()
    entries = json.loads(log_path.read_text())
    seen: dict[int, int] = {}
    for entry in entries:
        seen[entry["qsl_idx"]] = int(np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.int64)[0])
    good = sum(1 for idx, cls in seen.items() if labels[idx] == cls)
    return good, len(seen)


def accuracy_text(task: str, good: int, total: int) -> str:
    """The accuracy script's stdout for `task`, in the format its checker regex reads."""
    pct = 100.0 * good / max(total, 1)
    model = rules.TASK_TO_MODEL[task]
    if model == "resnet":
        return f"accuracy={pct:.3f}%, good={good}, total={total}\n"
    if model == "retinanet":
        return f"mAP={pct:.3f}%\n"
    if model.startswith("bert"):
        return f'{{"exact_match": {pct:.3f}, "f1": {pct:.3f}}}\n'
    if model.startswith("3d-unet"):
        return f"Accuracy: mean = {pct / 100:.5f}, kidney = {pct / 100:.4f}, tumor = {pct / 100:.4f}\n"
    if model == "rnnt":
        return f"Word Error Rate: {100 - pct}%, accuracy={pct}%\n"
    if model.startswith("dlrm"):
        return f"AUC={pct:.3f}%, accuracy={pct:.3f}%, good={good}, total={total}, queries={total}\n"
    raise ValueError(f"no accuracy format for {task}")


def _user_conf(scenario: str) -> str:
    from lgsut import SMOKE

    smoke = SMOKE[scenario]
    key = f"*.{scenario}"
    lines = [
        f"{key}.min_duration = {smoke['min_duration_ms']}",
        f"{key}.min_query_count = {smoke['min_query_count']}",
    ]
    if "qps" in smoke:
        lines.append(f"{key}.target_qps = {smoke['qps']}")
    return "\n".join(lines) + "\n"


def _verify_accuracy(reference: Path, audit: Path) -> str:
    ref = {e["qsl_idx"]: e["data"] for e in json.loads(reference.read_text())}
    test = json.loads(audit.read_text())
    mismatch = sum(1 for e in test if e["qsl_idx"] in ref and ref[e["qsl_idx"]][:16] != e["data"][:16])
    matched = sum(1 for e in test if e["qsl_idx"] in ref)
    lines = [
        f"num_acc_log_entries = {len(ref)}",
        "num_acc_log_duplicate_keys = 0",
        "num_acc_log_data_mismatch = 0",
        f"num_perf_log_entries = {len(test)}",
        f"num_perf_log_qsl_idx_match = {matched}",
        f"num_perf_log_data_mismatch = {mismatch}",
        f"num_missing_qsl_idxs = {len(test) - matched}",
        "TEST PASS" if mismatch == 0 and matched == len(test) else "TEST FAIL",
    ]
    return "\n".join(lines) + "\n"


def _verify_performance(reference: Path, audit: Path) -> str:
    ref = logparse.parse_summary(reference)
    test = logparse.parse_summary(audit)
    scenario = ref.scenario or ""
    key = rules.SUMMARY_SCORE_KEYS.get(scenario, "")
    ref_score = ref.number(key) if key in ref.fields else _early_stopping(ref, scenario)
    test_score = test.number(key) if key in test.fields else _early_stopping(test, scenario)
    lines = [f"reference score = {ref_score}", f"test score = {test_score}"]
    if not ref.valid:
        lines.append("TEST FAIL: Reference results are invalid")
    elif not test.valid:
        lines.append("TEST FAIL: Test results are invalid")
    elif test.scenario != scenario:
        lines.append("Test and reference scenarios do not match!")
    else:
        lines.append("TEST PASS")
    return "\n".join(lines) + "\n"


def _early_stopping(summary: logparse.SummaryLog, scenario: str) -> float | None:
    # The summary writes SS/MS scores as " * Early stopping 90.0th percentile estimate: N".
    pct = "90.0" if scenario == "SingleStream" else "99.0"
    for name, value in summary.fields.items():
        if name.endswith(f"Early stopping {pct}th percentile estimate"):
            return float(value)
    return None


def _invalid(job: dict) -> bool:
    summary = Path(job["out"]) / "mlperf_log_summary.txt"
    return job["mode"] != "accuracy" and "Result is : VALID" not in summary.read_text()


def _run_jobs(jobs: list[dict], out: Path, attempts: int = 5) -> None:
    """Run LoadGen jobs; rerun those a stalled machine made INVALID (Server latency bound).

    A Server run is INVALID when the machine stalls longer than resnet's 15 ms bound, which
    happens on a loaded 2-core box; like a person would, the stand-in runs it again.
    """
    pending = jobs
    for _ in range(attempts):
        jobs_file = out / "jobs.json"
        jobs_file.write_text(json.dumps(pending))
        subprocess.run([sys.executable, str(HERE / "lgsut.py"), str(jobs_file)], check=True, cwd=out)
        jobs_file.unlink()
        pending = [job for job in pending if not job.get("expect_invalid") and _invalid(job)]
        if not pending:
            return
    raise RuntimeError(f"LoadGen runs stayed INVALID after {attempts} attempts (machine too busy): {pending}")


def make_logset(out: Path, scenarios: tuple[str, ...] = SCENARIOS, variants: bool = True) -> Path:
    """Run LoadGen for every scenario x mode (+ defect variants); returns `out`."""
    out = Path(out)
    jobs = []
    for scen in scenarios:
        for mode in MODES:
            jobs.append({"out": str(_run_dir(out / scen, mode)), "scenario": scen, "mode": mode})
    if variants:
        for name, (scen, mode, extra) in VARIANTS.items():
            jobs.append({"out": str(out / "variants" / name), "scenario": scen, "mode": mode, **extra})
    out.mkdir(parents=True, exist_ok=True)
    _run_jobs(jobs, out)
    mlperf_conf = rules.mlperf_conf_text()
    for scen in scenarios:
        base = out / scen
        for mode in MODES:
            run = _run_dir(base, mode)
            (run / "mlperf.conf").write_text(mlperf_conf)
            (run / "user.conf").write_text(_user_conf(scen))
        good, total = _accuracy_fraction(base / "accuracy" / "mlperf_log_accuracy.json")
        (base / "accuracy" / "accuracy.txt").write_text(accuracy_text("resnet50", good, total))
        t01 = base / "TEST01"
        (t01 / "accuracy").mkdir(parents=True, exist_ok=True)
        shutil.move(
            t01 / "performance/run_1/mlperf_log_accuracy.json", t01 / "accuracy/mlperf_log_accuracy.json"
        )
        (t01 / "verify_accuracy.txt").write_text(
            _verify_accuracy(
                base / "accuracy/mlperf_log_accuracy.json", t01 / "accuracy/mlperf_log_accuracy.json"
            )
        )
        for test in rules.COMPLIANCE_TESTS:
            (base / test / "verify_performance.txt").write_text(
                _verify_performance(
                    base / "performance/run_1/mlperf_log_summary.txt",
                    base / test / "performance/run_1/mlperf_log_summary.txt",
                )
            )
    if variants:
        good, total = _accuracy_fraction(out / "variants/broken_accuracy/mlperf_log_accuracy.json")
        (out / "variants/broken_accuracy/accuracy.txt").write_text(accuracy_text("resnet50", good, total))
    return out


_SHARED: dict[str, Path] = {}


def shared_logset(make_dir: Callable[[], Path]) -> Path:
    """One logset per test process, whichever suite asks first (make_dir gives an empty dir)."""
    if "logset" not in _SHARED:
        _SHARED["logset"] = make_logset(make_dir())
    return _SHARED["logset"]


@dataclass
class Host:
    """One lab node as the controller knows it; every str field but system_name is private."""

    name: str  # inventory hostname
    system_name: str
    category: str = "edge"
    tasks: tuple[str, ...] = ("resnet50",)
    scenarios: tuple[str, ...] | None = None  # default: the category's required scenarios
    overrides: dict = field(default_factory=lambda: dict(PERSON_FIELDS))
    hostname: str = ""  # the machine's own hostname (manifest)
    address: str = "192.0.2.10"
    user: str = "labadmin"
    key_path: str = "/home/labadmin/.ssh/lab_ed25519"
    workdir: str = "/srv/fleet-work"
    synthetic: bool = True
    profile: str = "smoke"
    cores: int = 2
    accelerators: list = field(default_factory=list)  # manifest host accelerators

    def secrets(self) -> list[str]:
        """What must never appear in a submission tree."""
        found = [self.address, self.user, self.key_path, self.workdir, self.hostname or f"{self.name}.lab"]
        if self.name != self.system_name:
            found.append(self.name)
        return found


def three_hosts() -> list[Host]:
    """Two edge nodes (resnet50) and a datacenter node (retinanet: its Server bound is 100 ms,
    see lgsut.py); one system name needs sanitizing."""
    return [
        Host("node1", "node1_cpu", "edge", address="192.0.2.11", hostname="lab-node1.corp.example"),
        Host("node2", "edge box 2", "edge", address="192.0.2.12", hostname="lab-node2.corp.example"),
        Host(
            "dc1",
            "dc-server",
            "datacenter",
            tasks=("retinanet",),
            address="192.0.2.13",
            hostname="rack7-u12.corp.example",
        ),
    ]


def _scenarios(host: Host, task: str) -> tuple[str, ...]:
    if host.scenarios is not None:
        return host.scenarios
    return rules.model_for_task(task).scenarios_for(host.category)


def _manifest_run(host: Host, task: str, scen: str, mode: str, rel: str, raw_host: Path) -> dict:
    model = rules.TASK_TO_MODEL[task]
    run = {
        "task": task,
        "model": model,
        "scenario": scen,
        "mode": mode,
        "profile": host.profile,
        "backend": "onnxruntime",
        "execution_provider": "CPUExecutionProvider",
        "threads": host.cores,
        "batch_size": 8,
        "synthetic": host.synthetic,
        "model_path": f"{host.workdir}/assets/{task}.onnx",
        "model_sha256": "ab" * 32,
        "dataset_path": f"{host.workdir}/assets/{task}-data",
        "dataset_sha256": "cd" * 32,
        "dir": rel,
        "started": "2026-11-28T10:00:00+00:00",
        "finished": "2026-11-28T10:00:01+00:00",
        "duration_s": 1.0,
        "outcome": "ok",
        "error": None,
        "result_validity": None,
        "result": None,
        "result_unit": None,
        "accuracy": None,
        "verify": None,
    }
    detail = raw_host / rel / "mlperf_log_detail.txt"
    if detail.exists():
        log = logparse.parse_detail(detail)
        run["result_validity"] = log.validity
        key, unit, div = rules.RESULT_KEYS[scen]
        value = log.number(key)
        run["result"] = None if value is None else value / div
        run["result_unit"] = unit
    if mode == "accuracy":
        metric = rules.MODELS[model].accuracy[0]
        acc = logparse.parse_accuracy(raw_host / rel / "accuracy.txt", [(metric.name, metric.pattern)])
        run["accuracy"] = acc.first(metric.name)
    if mode.startswith("TEST"):
        verify = logparse.parse_verify(raw_host / task / scen / mode / "verify_performance.txt")
        run["verify"] = "TEST PASS" if verify.passed else "TEST FAIL"
    return run


def write_node_json(raw_host: Path, host: Host) -> None:
    """What `fleet collect` writes beside a node's results (docs/contracts.md)."""
    node = {
        "inventory_hostname": host.name,
        "system_name": host.system_name,
        "category": host.category,
        "system_overrides": dict(host.overrides),
        "facts": {
            "cpu_model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
            "sockets": 1,
            "cores_per_socket": host.cores,
            "threads_per_core": 1,
            "logical_cpus": host.cores,
            "memory_mb": 23841,
            "os": "Debian 12",
            "kernel": "6.1.0",
            "architecture": "x86_64",
        },
        # What an inventory also knows about a node and must stay private.
        "ansible_host": host.address,
        "ansible_user": host.user,
        "ansible_ssh_private_key_file": host.key_path,
        "fleet_workdir": host.workdir,
    }
    (raw_host / "node.json").write_text(json.dumps(node, indent=2))


def build_run(run_dir: Path, logset: Path, hosts: list[Host], run_id: str = "run-test") -> Path:
    """Write runs/<run_id>/raw/<host>/ for every host from one logset; returns run_dir."""
    run_dir = Path(run_dir)
    for host in hosts:
        raw_host = run_dir / "raw" / host.name
        runs = []
        for task in host.tasks:
            model = rules.model_for_task(task)
            for scen in _scenarios(host, task):
                shutil.copytree(logset / scen, raw_host / task / scen)
                for acc_dir in (raw_host / task / scen / "accuracy",):
                    text = (acc_dir / "accuracy.txt").read_text()
                    good, total = _accuracy_fraction(acc_dir / "mlperf_log_accuracy.json")
                    if task != "resnet50":
                        text = accuracy_text(task, good, total)
                    (acc_dir / "accuracy.txt").write_text(text)
                modes = ["performance", "accuracy", *model.compliance_tests]
                for test in rules.COMPLIANCE_TESTS:
                    if test not in model.compliance_tests:
                        shutil.rmtree(raw_host / task / scen / test)
                for mode in modes:
                    rel = str(_run_dir(Path(task) / scen, mode))
                    runs.append(_manifest_run(host, task, scen, mode, rel, raw_host))
        manifest = {
            "manifest_version": 1,
            "round": "v3.1",
            "host": {
                "hostname": host.hostname or f"{host.name}.lab",
                "cpu_model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
                "sockets": 1,
                "cores_per_socket": host.cores,
                "threads_per_core": 1,
                "logical_cpus": host.cores,
                "cpu_max_mhz": "3200.0000",
                "caches": "L1d 48 KiB, L2 1.3 MiB, L3 48 MiB",
                "memory_bytes": 25_000_000_000,
                "os": "Debian GNU/Linux 12 (bookworm)",
                "kernel": "6.1.0-13-amd64",
                "libc": "glibc 2.36",
                "accelerators": host.accelerators,
                "cpu_quota": None,
            },
            "versions": {
                "python": "3.11.2",
                "fleet": "0.1.0",
                "loadgen": "6.0.17",
                "onnxruntime": "1.32.0",
                "numpy": "2.2.0",
                "opencv": "4.10.0",
            },
            "runs": runs,
        }
        (raw_host / "manifest.json").write_text(json.dumps(manifest, indent=2))
        write_node_json(raw_host, host)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id}))
    return run_dir


def make_harness_out(base: Path, scenarios: tuple[str, ...] = ("Offline",)) -> Path:
    """Run the real node harness (synthetic small ResNet50, smoke profile); returns its --out."""
    base = Path(base)
    repo = HERE.parents[1]
    assets = base / "assets"
    harness = [sys.executable, "-m", "fleet.harness"]
    subprocess.run(
        [
            *harness,
            "synth",
            "--task",
            "resnet50",
            "--variant",
            "small",
            "--samples",
            "64",
            "--out",
            str(assets),
        ],
        check=True,
        cwd=repo,
        capture_output=True,
        timeout=900,
    )
    made = json.loads((assets / "fleet_synthetic.json").read_text())
    spec = {
        "task": "resnet50",
        "scenarios": list(scenarios),
        "modes": list(MODES),
        "profile": "smoke",
        "model": str(assets / made["model"]["file"]),
        "dataset": str(assets / made["dataset"]["dir"]),
        "synthetic": True,
        "run_id": "run-harness",
    }
    (base / "spec.json").write_text(json.dumps(spec))
    out = base / "out"
    subprocess.run(
        [
            *harness,
            "run",
            "--spec",
            str(base / "spec.json"),
            "--out",
            str(out),
            "--cache",
            str(base / "cache"),
        ],
        check=True,
        cwd=repo,
        capture_output=True,
        timeout=900,
    )
    return out


def build_run_from_harness(
    run_dir: Path, harness_out: Path, hosts: list[Host], run_id: str = "run-h"
) -> Path:
    """raw/<host>/ = the harness's own output + node.json, as `fleet collect` leaves it."""
    run_dir = Path(run_dir)
    for host in hosts:
        raw_host = run_dir / "raw" / host.name
        shutil.copytree(harness_out, raw_host)
        write_node_json(raw_host, host)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id}))
    return run_dir


def replace_run(run_dir: Path, host: str, task: str, scen: str, mode: str, source: Path) -> None:
    """Swap one run's LoadGen logs for a variant's (a real run with a defect)."""
    target = Path(run_dir) / "raw" / host / _run_dir(Path(task) / scen, mode)
    for name in (
        "mlperf_log_detail.txt",
        "mlperf_log_summary.txt",
        "mlperf_log_accuracy.json",
        "accuracy.txt",
    ):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
