"""What tuning finds on this machine: Server QPS as a fraction of tuned Offline QPS, and its cost.

    .venv/bin/python benchmarks/tuning.py [--task resnet50|retinanet] [--variant small|full]
                                          [--budget-s 120] [--safety-margin 0.05] [--no-check]

Runs `tune` (the harness's, in-process: the same code `fleet tune` runs on each node) for
Offline and Server on a synthetic ResNet50, then prints: the tuned Offline rate (calibration
run), the best VALID Server target and the recommended one (less the safety margin), their
fraction of the Offline rate, the untuned harness's own Server target for comparison, and the
trials and wall time each search took. Unless --no-check, one smoke Server run at the
recommended target shows whether it holds. Prints; never asserts.

The small variant (1/16 of the channels) keeps a Server trial (at least 459 queries) to a few
seconds here; the full model serves ~15 samples/s on these two cores, so its Server trials
take about a minute each and it needs a budget of 10 minutes or more. ResNet50's 15 ms
Server bound is at the mercy of the machine's thread wake-up latency; `--task retinanet`
(synthetic RetinaNet, 100 ms bound) shows the search where that noise does not decide.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet.harness.runner import Harness  # noqa: E402
from fleet.harness.spec import RunSpec, Tuning  # noqa: E402
from fleet.harness.synthetic import synthesize  # noqa: E402
from fleet.harness.tuning.options import TuneOptions  # noqa: E402
from fleet.harness.tuning.tuner import tune_spec  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("resnet50", "retinanet"), default="resnet50")
    ap.add_argument("--variant", choices=("small", "full"), default="small", help="resnet50 only")
    ap.add_argument("--samples", type=int, default=64, help="dataset size (RetinaNet: 800x800 images)")
    ap.add_argument("--budget-s", type=float, default=120.0, help="for Offline and Server together")
    ap.add_argument("--safety-margin", type=float, default=0.05)
    ap.add_argument("--no-check", action="store_true", help="skip the Server run at the tuned target")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fleet-tuning-bench-"))
    os.environ.setdefault("FLEET_CACHE_DIR", str(tmp / "cache"))
    os.environ.setdefault("FLEET_DIGEST_CACHE", str(tmp / "digests.json"))
    assets = tmp / "assets"
    variant = args.variant if args.task == "resnet50" else "full"
    marker = synthesize(args.task, assets, args.samples, seed=0, variant=variant)
    model, dataset = assets / marker["model"]["file"], assets / marker["dataset"]["dir"]
    spec = RunSpec(task=args.task, scenarios=["Offline", "Server"], modes=["performance"], profile="smoke",
                   model=str(model), dataset=str(dataset), synthetic=True)

    # The untuned harness's Server target (calibrated throughput x the profile's utilization).
    untuned = Harness(replace(spec, scenarios=["Server"]), tmp / "untuned", echo=lambda line: None)
    default_qps = untuned.plan("Server").conf["target_qps"]
    untuned.backend.close()

    started = time.monotonic()
    opts = TuneOptions(budget_s=args.budget_s, safety_margin=args.safety_margin)
    records = tune_spec(spec, tmp / "tune", opts, echo=lambda line: None)
    wall = time.monotonic() - started
    off, srv = records["Offline"], records["Server"]

    print(f"tuning benchmark: synthetic {args.task} ({variant}), {os.cpu_count()} CPUs, "
          f"budget {args.budget_s:g} s, safety margin {args.safety_margin:g}")
    for rec in (off, srv):
        kinds = {k: sum(t["kind"] == k for t in rec["trials"]) for k in ("knob", "target", "server")}
        print(f"  {rec['scenario']:8s} {rec['status']:6s} trials {rec['trial_count']:2d} "
              f"(knob {kinds['knob']}, calibration {kinds['target']}, server {kinds['server']}), "
              f"wall {rec['wall_s']:.1f} s, settings {rec['settings']}")
    if off["status"] != "ok" or srv["status"] != "ok":
        print(f"  tuning failed: {off['error'] or srv['error']}")
        return 1
    rate = off["measured"]["offline_samples_per_s"]
    best = srv["server_search"]["best"]["target_qps"]
    ceiling = (srv["server_search"]["ceiling"] or {}).get("target_qps")
    recommended = srv["tuning"]["server_target_qps"]
    print(f"  Offline tuned rate           {rate:9.1f} samples/s (calibration run)")
    print(f"  Server best VALID target     {best:9.1f} QPS  = {best / rate:.2f} x Offline"
          + (f"  (INVALID at {ceiling:.1f})" if ceiling else ""))
    print(f"  Server recommended target    {recommended:9.1f} QPS  = {recommended / rate:.2f} x Offline")
    print(f"  untuned harness Server target {default_qps:8.1f} QPS  = {default_qps / rate:.2f} x Offline")
    print(f"  total: {off['trial_count'] + srv['trial_count']} trial runs, {wall:.1f} s")
    if not args.no_check:
        tuned = Tuning(**srv["tuning"])
        check = Harness(replace(spec, scenarios=["Server"], tuning=tuned), tmp / "check",
                        echo=lambda line: None)
        entry = check.run_one("Server", "performance")
        check.backend.close()
        print(f"  check: smoke Server run at {recommended:.1f} QPS -> {entry['result_validity']} "
              f"({entry['result']:.1f} {entry['result_unit']})")
    print(f"  logs: {tmp / 'tune'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
