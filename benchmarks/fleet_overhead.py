#!/usr/bin/env python3
"""Orchestration overhead of `fleet run` on real sshd test nodes (root only).

    python benchmarks/fleet_overhead.py [--nodes 1,2,4] [--repeat 1]

Brings up 4 test nodes (tests/testnodes.py: node1 edge with a 50 % CPU quota, the others
datacenter), then measures:
- cold provision: a first `fleet run` on 4 fresh nodes; the wall time of its provision,
  deploy and assets stages (run.json attempts[].stages; the controller's wheelhouse is
  built beforehand so the figure is the nodes' side);
- warm overhead, for 1, 2 and 4 nodes already provisioned: the wall time of `fleet run`
  (one Offline performance job per node, reduced synthetic ResNet50) minus the longest
  single benchmark it ran, from the manifests' durations. That difference is what the
  controller adds: ansible stages, polling, collection, bookkeeping.
Figures are printed, never asserted: the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from testnodes import TestNodes, free_slot  # noqa: E402

from fleet.runstate import RunState  # noqa: E402
from fleet.wheelhouse import build_project_wheel, extras_for, prepare_deps  # noqa: E402

JOB = ["--task", "resnet50", "--scenario", "Offline", "--modes", "performance", "--synthetic",
       "--synthetic-variant", "small", "--synthetic-samples", "32", "--plain"]  # fmt: skip


def fleet_run(
    inventory: Path, runs: Path, run_id: str, hosts: list[str], env: dict[str, str]
) -> tuple[float, RunState]:
    cmd = [sys.executable, "-m", "fleet.cli", "run", "-i", str(inventory), "--limit", ",".join(hosts),
           "--runs-dir", str(runs), "--run-id", run_id, *JOB]  # fmt: skip
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"fleet run {run_id} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, RunState.load(runs / run_id / "run.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1,2,4", help="node counts for the warm overhead")
    parser.add_argument("--repeat", type=int, default=1, help="warm runs per node count (median reported)")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    if os.geteuid() != 0:
        raise SystemExit("fleet_overhead: needs root (test nodes in network namespaces)")
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    cache, runs = work / "cache", work / "runs"
    env = {**os.environ, "FLEET_CACHE_DIR": str(cache)}
    print("preparing the controller's wheelhouse and node wheel ...", file=sys.stderr)
    prepare_deps(cache, extras=extras_for([("resnet50", "onnxruntime")]))
    env["FLEET_NODE_WHEEL"] = str(build_project_wheel(cache).path)
    nodes = TestNodes(slot=free_slot()).up(max(4, *counts), ["edge", "dc", "dc", "dc"])
    try:
        hosts = [n.name for n in nodes.nodes]
        print("cold run on 4 fresh nodes ...", file=sys.stderr)
        wall, state = fleet_run(nodes.inventory, runs, "cold", hosts[:4], env)
        stages = state.attempts[-1]["stages"]
        cold = sum(stages[s] for s in ("provision", "deploy", "assets"))
        rows = []
        for n in counts:
            overheads, walls, longest = [], [], []
            for i in range(args.repeat):
                print(f"warm run, {n} node(s), #{i + 1} ...", file=sys.stderr)
                wall_n, st = fleet_run(nodes.inventory, runs, f"warm{n}-{i}", hosts[:n], env)
                bench = max(j.duration_s or 0.0 for j in st.jobs.values())
                walls.append(wall_n)
                longest.append(bench)
                overheads.append(wall_n - bench)
            med = statistics.median
            rows.append((n, med(walls), med(longest), med(overheads), st.attempts[-1]["stages"]))
    finally:
        nodes.down()
    parts = " + ".join(f"{s} {stages[s]:.1f}" for s in ("provision", "deploy", "assets"))
    print(f"\ncold provision, 4 nodes: {cold:.1f} s  ({parts}; whole first run {wall:.1f} s)")
    print("\nwarm fleet run (one Offline performance job per node, already provisioned):")
    print(f"{'nodes':>5}  {'wall s':>7}  {'longest bench s':>15}  {'overhead s':>10}  stages (s)")
    for n, w, b, o, st in rows:
        detail = " ".join(f"{k}={v:.1f}" for k, v in st.items())
        print(f"{n:>5}  {w:7.1f}  {b:15.1f}  {o:10.1f}  {detail}")
    print(f"\nrun directories kept in {runs}")
    print(json.dumps({"cold_provision_4_s": round(cold, 2),
                      "overhead_s": {str(n): round(o, 2) for n, _, _, o, _ in rows}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
