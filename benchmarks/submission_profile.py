#!/usr/bin/env python3
"""A full v3.1 submission-profile run on one datacenter test node, judged by the official checker.

    python benchmarks/submission_profile.py [--inference-tar PATH] [--keep]   # root only
    python benchmarks/submission_profile.py --judge RUN_DIR      # judge a kept run again
    python benchmarks/submission_profile.py --profile smoke      # the same path in minutes

What a lab does for one system, end to end, on real parts: brings up one datacenter test
node (tests/testnodes.py: sshd in a network namespace, no route out; the person-only systems
fields in group_vars/all.yml, as a lab states them), then

    fleet run -i lab.ini -t resnet50 --scenario Offline --scenario Server --profile submission
              --synthetic --synthetic-variant small

with the profile's modes (performance, accuracy, TEST01, TEST04, TEST05), every rule at its v3.1
value (600 s minimum per run) and the node's own calibration (no tuning, no thread pin). The
run merges its tree (open division: the assets are synthetic); then the built-in checker and
the official v3.1 submission checker (unpacked from ../shared/external/) judge it. The official
checker skips the audits and the accuracy targets in the open division, so the same results are
merged again into the closed division (a copy of the run, --allow-synthetic-in-closed) and
judged there, where every TEST01/04/05 and the 99 % accuracy target count.

Prints the wall time per stage and per mode, the official `Results=` against the expected
count and its ERROR lines for both trees; the last line is the closed tree's

    submission_profile results=N expected=M errors=E wall_s=W

Goal: N = M, E = 0, the Server result VALID on the first try. CPU-bound for about 80 minutes
on two cores (eight runs of at least 600 s): not part of the test suite. Run nothing else
beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testnodes import TestNodes, free_slot  # noqa: E402

from fleet.runstate import RunState  # noqa: E402
from fleet.submission import paths  # noqa: E402
from fleet.submission.assemble import assemble_submission, read_record, tree_of_run  # noqa: E402
from fleet.submission.checker import check_tree  # noqa: E402
from fleet.submission.official import OfficialVerdict, run_official  # noqa: E402
from fleet.wheelhouse import build_project_wheel, extras_for, prepare_deps  # noqa: E402

DEFAULT_TAR = ROOT.parent / "shared" / "external" / "mlcommons-inference-v3.1.tar.gz"
SUBMITTER = "MLPerfFleet"
JOB = ["--task", "resnet50", "--scenario", "Offline", "--scenario", "Server", "--synthetic",
       "--synthetic-variant", "small", "--submitter", SUBMITTER, "--plain"]  # fmt: skip


def unpack_inference(tar: Path, into: Path) -> Path:
    """The MLCommons inference tree at v3.1 (its checker is stdlib-only)."""
    if not tar.is_file():
        raise SystemExit(f"submission_profile: {tar} does not exist (give --inference-tar)")
    with tarfile.open(tar) as archive:
        archive.extractall(into, filter="data")
    (src,) = [p for p in into.iterdir() if p.is_dir()]
    return src


def lab_inventory(nodes: TestNodes) -> Path:
    """The test inventory without its thread pin: the harness sizes its pools as on a real node.

    Written beside the test inventory, so group_vars/all.yml (the systems fields only a person
    can state) applies to it too.
    """
    path = nodes.inventory.with_name("lab-submission.ini")
    path.write_text(nodes.inventory.read_text().replace(" fleet_threads=1", ""))
    return path


def run_fleet(inventory: Path, runs: Path, env: dict[str, str], profile: str) -> tuple[int, float]:
    """`fleet run`, its progress lines echoed as they come; (exit status, wall seconds)."""
    cmd = [sys.executable, "-m", "fleet.cli", "run", "-i", str(inventory), "--runs-dir", str(runs),
           "--run-id", "submission", "--profile", profile, *JOB]  # fmt: skip
    t0 = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"  | {line.rstrip()}", file=sys.stderr, flush=True)
    return proc.returncode, time.monotonic() - t0


def closed_copy(run_dir: Path, into: Path) -> Path:
    """The run's results merged into the closed division, from a copy: the run keeps its open tree."""
    copy = into / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("ansible", paths.TREE_DIR))
    return assemble_submission(copy, SUBMITTER, "closed", include_synthetic_in_closed=True)


def judge(inference: Path, tree: Path, expected: int, label: str) -> OfficialVerdict:
    t0 = time.monotonic()
    verdict = run_official(inference, tree, SUBMITTER)
    print(f"official v3.1 checker, {label} ({time.monotonic() - t0:.0f} s):\n" + verdict.render(expected))
    for key, value in sorted(verdict.results.items()):
        print(f"  official Results {key} {value}")
    return verdict


def report_times(run_dir: Path) -> None:
    state = RunState.load(run_dir / "run.json")
    stages = state.attempts[-1].get("stages", {})
    print("\nwall time per stage (s): " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    print("\nper job and mode:")
    for job in state.jobs.values():
        extra = f" ({job.stage}: {job.error})" if job.error else ""
        print(f"  {job.id}: {job.status} {job.validity or ''} {job.result or ''} {job.result_unit or ''}"
              f" accuracy={job.accuracy} {json.dumps(job.verify)}{extra}")
    for host in state.nodes:
        manifest = run_dir / "raw" / host / "manifest.json"
        if not manifest.is_file():
            continue
        for entry in json.loads(manifest.read_text())["runs"]:
            result = "" if entry.get("result") is None else f"{entry['result']:.4g} {entry['result_unit']}"
            acc = entry.get("accuracy")
            print(f"  {host} {entry['task']} {entry['scenario']:8s} {entry['mode']:12s} "
                  f"{entry.get('duration_s') or 0:7.0f} s  {entry['outcome']:10s} "
                  f"{entry.get('result_validity') or '':8s} {result} {entry.get('verify') or ''}"
                  f"{'' if acc is None else f' accuracy={acc:.3f}'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inference-tar", type=Path, default=DEFAULT_TAR,
                        help="git archive of mlcommons/inference at v3.1 (default: ../shared/external/)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the test node up (the run dir is always kept)")
    parser.add_argument("--profile", choices=("submission", "smoke"), default="submission",
                        help="smoke: the same path in minutes (the checker then counts no result)")
    parser.add_argument("--judge", type=Path, metavar="RUN_DIR", help="only judge this run dir again")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-submission-"))
    inference = unpack_inference(args.inference_tar, work / "inference")
    wall, rc = 0.0, 0
    if args.judge:
        run_dir = args.judge
    else:
        if os.geteuid() != 0:
            raise SystemExit("submission_profile: needs root (test nodes in network namespaces)")
        cache, runs = work / "cache", work / "runs"
        env = {**os.environ, "FLEET_CACHE_DIR": str(cache)}
        print("preparing the controller's wheelhouse and node wheel ...", file=sys.stderr)
        prepare_deps(cache, extras=extras_for([("resnet50", "onnxruntime")]))
        env["FLEET_NODE_WHEEL"] = str(build_project_wheel(cache).path)
        nodes = TestNodes(slot=free_slot()).up(1, ["dc"])
        try:
            rc, wall = run_fleet(lab_inventory(nodes), runs, env, args.profile)
        finally:
            if not args.keep:
                nodes.down()
        run_dir = runs / "submission"
        print(f"\nfleet run exit status {rc}, wall {wall:.0f} s, run dir {run_dir}")
    report_times(run_dir)
    tree = tree_of_run(run_dir)
    profile = RunState.load(run_dir / "run.json").settings.get("profile", "submission")
    builtin = check_tree(tree, profile=profile, record=read_record(run_dir / paths.ASSEMBLY_RECORD))
    print("\nbuilt-in checker:\n" + builtin.render())
    expected = len(builtin.expected)
    judge(inference, tree, expected, f"the run's tree ({tree})")
    verdict = judge(inference, closed_copy(run_dir, work / "as-closed"), expected,
                    "the same results in the closed division")
    print(f"submission_profile results={verdict.total_results} expected={expected} "
          f"errors={len(verdict.errors)} wall_s={wall:.0f}")
    return 0 if verdict.ok(expected) and rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
