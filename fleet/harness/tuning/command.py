"""`python -m fleet.harness tune`: tune this node for a spec's task, in-process.

    python -m fleet.harness tune --spec spec.json --out OUT [--budget-s 120] [--safety-margin 0.05]
    python -m fleet.harness tune --task resnet50 --scenario Offline,Server --model M --dataset D --out OUT

Takes the same spec and flags as `run` (settings the spec or flags give are kept fixed, the
others are searched) plus the tuning options. Writes OUT/tuning.json, per-scenario logs and
trials under OUT/<task>/<scenario>/tuning/, and a `mode: "tune"` manifest entry per scenario.
Exit status 1 when any scenario could not be tuned (the others are still recorded).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from fleet.harness.errors import HarnessError
from fleet.harness.tuning.options import TuneOptions


def add_parser(sub: Any, run_parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `tune` subcommand: `run`'s spec flags plus the tuning options."""
    tune = sub.add_parser("tune", parents=[run_parser], conflict_handler="resolve",
                          help="tune backend settings and LoadGen targets with short LoadGen runs")
    defaults = TuneOptions()
    tune.add_argument("--budget-s", type=float, default=defaults.budget_s,
                      help="seconds for the whole spec, split over its scenarios (default %(default)s)")
    tune.add_argument("--safety-margin", type=float, default=defaults.safety_margin,
                      help="Server target = best VALID QPS x (1 - margin) (default %(default)s)")
    tune.add_argument("--trial-s", type=float, default=defaults.trial_s,
                      help="LoadGen min duration of one trial (default %(default)s)")
    tune.add_argument("--stable-s", type=float, default=defaults.stable_s,
                      help="min duration of the calibration run behind Offline/latency targets")
    tune.add_argument("--tolerance", type=float, default=defaults.tolerance,
                      help="Server search stops at this relative bracket width (default %(default)s)")
    return tune


def main(args: argparse.Namespace) -> int:
    from fleet.harness.cli import spec_from_args
    from fleet.harness.tuning.tuner import tune_spec

    if args.mode:
        raise HarnessError("tune always measures performance: drop --mode")
    spec = spec_from_args(args)
    spec = replace(spec, modes=["performance"])
    opts = TuneOptions(budget_s=args.budget_s, safety_margin=args.safety_margin, trial_s=args.trial_s,
                       stable_s=args.stable_s, tolerance=args.tolerance)
    records = tune_spec(spec, Path(args.out), opts, cache_root=args.cache,
                        echo=lambda line: print(line, flush=True))
    return 0 if all(r["status"] == "ok" for r in records.values()) else 1
