"""`fleet tune`: tune every node of an inventory at once, and store what each one chose.

    fleet tune --inventory lab.ini --task resnet50 [--scenario Server ...] [--budget 15m]
    fleet run  --inventory lab.ini --task resnet50 --tuned      # uses the stored tuning per node

Runs `python -m fleet.harness tune` on every node through the same stages as `fleet run`
(provision, deploy, assets, bench, collect), all nodes at once. Each node splits the budget
over its scenarios; setup stages come on top. The choices land in
runs/tuning/<system_name>/<task>.json; a node or scenario whose tuning fails is named in a
warning, and `fleet run --tuned` runs it with defaults. Exit status 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from fleet import orchestrate, plan, tuning_store
from fleet.config import PROFILES, SYNTHETIC_VARIANTS, RunSettings, default_inventory, validate
from fleet.errors import ConfigError
from fleet.harness.errors import HarnessError
from fleet.harness.spec import RunSpec
from fleet.harness.tuning.options import SCENARIO_WEIGHT, TuneOptions
from fleet.inventory import Inventory, load_inventory
from fleet.progress import Progress
from fleet.runstate import OK, RunState
from fleet.tuning_report import tuning_markdown

MIN_JOB_BUDGET_S = 10.0
# How long a tuning job may overrun its budget before the node stops it (the last trial,
# opening the model, writing results).
JOB_SLACK_S = 300


def parse_budget(text: str) -> float:
    """'15m', '90s', '1h', '1h30m' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ConfigError(f"--budget {text!r}: use seconds or a duration like 90s, 15m, 1h30m")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError("--budget must be positive")
    return seconds


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune",
        help="tune backend settings and LoadGen targets on every node, all at once",
        description="Short LoadGen runs on each node choose its backend settings (threads, batch, "
        "graph optimization, execution provider) and LoadGen targets (Offline expected QPS, "
        "SingleStream/MultiStream expected latency, Server target QPS by search); the choices are "
        "stored per system for `fleet run --tuned`.",
    )
    p.add_argument("--inventory", "-i", help="Ansible inventory; default: this machine as an edge node")
    p.add_argument("--task", "-t", action="append", default=[], help="task to tune; repeatable")
    p.add_argument("--scenario", "-s", action="append", default=[],
                   help="only these scenarios (each node tunes those its category runs)")
    p.add_argument("--budget", default="15m", help="tuning time per node, e.g. 15m, 90s (default 15m)")
    p.add_argument("--safety-margin", type=float, default=TuneOptions().safety_margin,
                   help="Server target = best VALID QPS x (1 - margin) (default %(default)s)")
    p.add_argument("--trial-s", type=float, default=TuneOptions().trial_s,
                   help="LoadGen min duration of one trial (default %(default)s)")
    p.add_argument("--profile", choices=PROFILES, default="smoke",
                   help="the profile the tuned values are for (LoadGen headroom; default smoke)")
    p.add_argument("--runs-dir", default="runs", help="run directories and runs/tuning/ (default ./runs)")
    p.add_argument("--artifacts", help="artifact store: DIR/<task>/ holds the model and dataset")
    p.add_argument("--synthetic", action="store_true", help="synthetic assets (default without --artifacts)")
    p.add_argument("--synthetic-variant", choices=SYNTHETIC_VARIANTS, default="",
                   help="synthetic model size (default: small for smoke, full for submission)")
    p.add_argument("--synthetic-samples", type=int, help="synthetic dataset size")
    p.add_argument("--limit", default="", help="comma list of inventory hosts to use")
    p.add_argument("--run-id", help="name of the tuning run's directory (default tune-<date-time>)")
    p.add_argument("--cache-dir", default="", help="controller cache for wheelhouses")
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument("-v", "--verbose", action="count", default=0, help="ansible verbosity in the run's logs")
    p.set_defaults(func=main)


def tune_specs(inventory: Inventory, settings: RunSettings, run_id: str,
               warn: tuning_store.Warn) -> dict[str, list[RunSpec]]:
    """Per node, the scenarios it runs (those of --scenario its category has), mode `tune`."""
    wanted = list(settings.scenarios)
    everything = replace(settings, scenarios=[])
    specs: dict[str, list[RunSpec]] = {}
    for node in inventory:
        node_specs = []
        for spec in plan.node_specs(node, everything, run_id):
            scenarios = [s for s in spec.scenarios if not wanted or s in wanted]
            if scenarios:
                node_specs.append(replace(spec, scenarios=scenarios, modes=["tune"]))
            else:
                warn(f"{node.name} ({node.category}) runs none of {', '.join(wanted)} for {spec.task}: "
                     "not tuned")
        if node_specs:
            specs[node.name] = node_specs
    if not specs:
        raise ConfigError("no node runs any of the scenarios asked for")
    return specs


def main(args: argparse.Namespace) -> int:
    def warn(line: str) -> None:
        print(f"fleet: warning: {line}", file=sys.stderr)

    budget_s = parse_budget(args.budget)
    opts = TuneOptions(budget_s=budget_s, safety_margin=args.safety_margin, trial_s=args.trial_s)
    try:
        opts.check()
    except HarnessError as exc:
        raise ConfigError(str(exc)) from None
    settings = validate(RunSettings(
        inventory=args.inventory or str(default_inventory()), tasks=args.task, scenarios=args.scenario,
        profile=args.profile, runs_dir=args.runs_dir, artifacts=args.artifacts, synthetic=args.synthetic,
        synthetic_variant=args.synthetic_variant, synthetic_samples=args.synthetic_samples,
        limit=[h for h in args.limit.split(",") if h], cache_dir=args.cache_dir,
    ))
    inventory = load_inventory(settings.inventory, settings.limit or None)
    run_id = args.run_id or f"tune-{orchestrate.new_run_id()}"
    run_dir = Path(settings.runs_dir) / run_id
    if run_dir.exists():
        raise ConfigError(f"run directory {run_dir} exists; choose another --run-id")
    specs = tune_specs(inventory, settings, run_id, warn)
    commands: dict[str, list[str]] = {}
    for host, host_specs in specs.items():
        jobs = plan.jobs_of({host: host_specs})
        weights = [SCENARIO_WEIGHT.get(job.scenario, 1.0) for job in jobs]
        shares = [budget_s * w / sum(weights) for w in weights]
        if min(shares) < MIN_JOB_BUDGET_S:
            raise ConfigError(f"--budget {args.budget} leaves {min(shares):.0f} s for a scenario on "
                              f"{host} ({len(jobs)} scenarios); give each at least {MIN_JOB_BUDGET_S:.0f} s")
        for job, share in zip(jobs, shares, strict=True):
            commands[job.id] = ["tune", "--budget-s", f"{share:.1f}",
                                "--safety-margin", str(opts.safety_margin), "--trial-s", str(opts.trial_s)]
    settings.bench_timeout_s = int(budget_s + JOB_SLACK_S)
    print(f"fleet: tune {run_dir} ({budget_s:.0f} s of tuning per node, plus setup)", file=sys.stderr)
    with Progress(list(specs), live=False if args.plain else None) as progress:
        state = orchestrate.execute(run_dir, inventory, specs, settings, progress=progress,
                                    verbosity=args.verbose, commands=commands)
    stored = tuning_store.store_run(run_dir, state, inventory, tuning_store.store_root(settings.runs_dir))
    tuning_store.write_tune_summary(run_dir, state, inventory)
    (run_dir / "tuning.md").write_text(tuning_markdown(run_dir), encoding="utf-8")
    print_tuned(state, run_dir)
    for host, task, scenario, why in stored.failed:
        warn(f"{host} {task} {scenario}: tuning failed ({why}); fleet run --tuned runs it with defaults")
    for path in stored.paths:
        print(f"fleet: stored {path}", file=sys.stderr)
    return 0 if not stored.failed and all(j.status == OK for j in state.jobs.values()) else 1


def print_tuned(state: RunState, run_dir: Path) -> None:
    """One line per node x task x scenario: what was chosen, in how many trials."""
    print(f"tune {state.run_id}")
    for job in state.jobs.values():
        try:
            data = json.loads((run_dir / "raw" / job.host / "tuning.json").read_text())
            rec = data["tasks"][job.task][job.scenario]
        except (OSError, ValueError, KeyError):
            print(f"  {job.host}  {job.task}  {job.scenario:12s}  {job.status}: {job.error or 'no result'}")
            continue
        if rec["status"] != "ok":
            print(f"  {job.host}  {job.task}  {job.scenario:12s}  FAILED: {rec['error']}")
            continue
        values = " ".join(f"{k}={v}" for k, v in rec["tuning"].items())
        print(f"  {job.host}  {job.task}  {job.scenario:12s}  {values}  "
              f"({rec['trial_count']} trials, {rec['wall_s']:.0f} s)")
