"""`fleet tune`: tune every node of an inventory at once, and store what each one chose.

    fleet tune --inventory lab.ini --task resnet50 [--scenario Server ...] [--budget 15m]
    fleet tune --resume RUN_ID                                   # tune again what failed or is missing
    fleet run  --inventory lab.ini --task resnet50 --tuned      # uses the stored tuning per node

Runs `python -m fleet.harness tune` on every node through the same stages as `fleet run`
(provision, deploy, assets, bench, collect), all nodes at once. Each node splits the budget
over its scenarios; setup stages come on top. The choices land in
runs/tuning/<system_name>/<task>.json; a node or scenario whose tuning fails is named in a
warning, and `fleet run --tuned` runs it with defaults. Exit status 1 when any failed.
The run directory keeps the budget and each job's harness command in tune.json, so
`--resume` tunes the failed jobs exactly as first asked and files only those.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fleet import orchestrate, plan, tuning_store
from fleet.commands.run import reopen
from fleet.config import PROFILES, SYNTHETIC_VARIANTS, RunSettings, default_inventory, validate
from fleet.errors import ConfigError, RunStateError
from fleet.harness.errors import HarnessError
from fleet.harness.jsonfile import read_json, write_json
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
DEFAULT_BUDGET = "15m"
TUNE_FILE = "tune.json"
TUNE_FILE_VERSION = 1
# Options that decide what a tuning run does (argparse dest -> flag); --resume reuses the
# run's own and refuses these rather than silently ignoring them.
PLAN_OPTIONS = {
    "inventory": "--inventory", "task": "--task", "scenario": "--scenario", "budget": "--budget",
    "safety_margin": "--safety-margin", "trial_s": "--trial-s", "profile": "--profile",
    "artifacts": "--artifacts", "synthetic": "--synthetic", "synthetic_variant": "--synthetic-variant",
    "synthetic_samples": "--synthetic-samples", "limit": "--limit", "run_id": "--run-id",
}


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
    defaults = TuneOptions()
    # Plan options default to None so that --resume can tell which were given.
    p.add_argument("--inventory", "-i", help="Ansible inventory; default: this machine as an edge node")
    p.add_argument("--task", "-t", action="append", default=[], help="task to tune; repeatable")
    p.add_argument("--scenario", "-s", action="append", default=[],
                   help="only these scenarios (each node tunes those its category runs)")
    p.add_argument("--budget", help=f"tuning time per node, e.g. 15m, 90s (default {DEFAULT_BUDGET})")
    p.add_argument("--safety-margin", type=float,
                   help=f"Server target = best VALID QPS x (1 - margin) (default {defaults.safety_margin})")
    p.add_argument("--trial-s", type=float,
                   help=f"LoadGen min duration of one trial (default {defaults.trial_s})")
    p.add_argument("--profile", choices=PROFILES,
                   help="the profile the tuned values are for (LoadGen headroom; default smoke)")
    p.add_argument("--runs-dir", default="runs", help="run directories and runs/tuning/ (default ./runs)")
    p.add_argument("--artifacts", help="artifact store: DIR/<task>/ holds the model and dataset")
    p.add_argument("--synthetic", action="store_true", help="synthetic assets (default without --artifacts)")
    p.add_argument("--synthetic-variant", choices=SYNTHETIC_VARIANTS,
                   help="synthetic model size (default: small for smoke, full for submission)")
    p.add_argument("--synthetic-samples", type=int, help="synthetic dataset size")
    p.add_argument("--limit", default="", help="comma list of inventory hosts to use")
    p.add_argument("--run-id", help="name of the tuning run's directory (default tune-<date-time>)")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="tune again only the failed or missing jobs of a tuning run, with its budget")
    p.add_argument("--cache-dir", default="", help="controller cache for wheelhouses")
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument("-v", "--verbose", action="count", default=0, help="ansible verbosity in the run's logs")
    p.set_defaults(func=main)


@dataclass
class TuneFile:
    """What a tuning run asked for beyond run.json: its budget and each job's harness command."""

    budget_s: float
    safety_margin: float
    trial_s: float
    commands: dict[str, list[str]]

    def save(self, run_dir: Path) -> None:
        write_json(Path(run_dir) / TUNE_FILE, {"tune_file_version": TUNE_FILE_VERSION, **asdict(self)})

    @classmethod
    def load(cls, run_dir: Path, state: RunState) -> TuneFile:
        """The run's tune.json, with a command for every job of the run, or one clear error."""
        path = Path(run_dir) / TUNE_FILE
        if not path.exists():
            raise RunStateError(_no_tune_file(path, state))
        data = read_json(path, RunStateError, missing="{path} does not exist",
                         invalid="{path} is corrupt ({exc}); cannot resume")
        try:
            if data.get("tune_file_version") != TUNE_FILE_VERSION:
                raise RunStateError(f"{path} has tune_file_version {data.get('tune_file_version')}; "
                                    f"expected {TUNE_FILE_VERSION}")
            commands = {str(k): [str(a) for a in v] for k, v in data["commands"].items()}
            numbers = [float(data[k]) for k in ("budget_s", "safety_margin", "trial_s")]
            tune = cls(*numbers, commands=commands)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RunStateError(f"{path} is corrupt ({exc!r}); cannot resume") from None
        missing = [j for j in state.jobs if (commands.get(j) or [""])[0] != "tune"]
        if missing:
            raise RunStateError(f"{path} has no tune command for {', '.join(missing)}; cannot resume")
        return tune


def _no_tune_file(path: Path, state: RunState) -> str:
    """Why a run without tune.json cannot be resumed here, and what to do instead."""
    if state.jobs and all(j.modes == ["tune"] for j in state.jobs.values()):
        return (f"{path} does not exist: run {state.run_id} predates fleet tune --resume and its budget "
                "is unknown; start a new fleet tune")
    return f"run {state.run_id} is not a tuning run (no {path.name}); resume it with fleet run --resume"


def tune_specs(inventory: Inventory, settings: RunSettings, run_id: str,
               warn: tuning_store.Warn) -> dict[str, list[RunSpec]]:
    """Per node, the scenarios it runs (those of --scenario its category has), mode `tune`."""
    wanted = list(settings.scenarios)
    everything = replace(settings, scenarios=[])
    specs: dict[str, list[RunSpec]] = {}
    skipped: list[str] = []  # said once some node has something to tune
    for node in inventory:
        node_specs = []
        for spec in plan.node_specs(node, everything, run_id, skip=skipped.append):
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
    for line in skipped:
        warn(line)
    return specs


def job_commands(specs: dict[str, list[RunSpec]], opts: TuneOptions,
                 budget_text: str) -> dict[str, list[str]]:
    """Job id -> `tune --budget-s ...`: each node's budget shared over its jobs by scenario weight."""
    commands: dict[str, list[str]] = {}
    for host, host_specs in specs.items():
        jobs = plan.jobs_of({host: host_specs})
        weights = [SCENARIO_WEIGHT.get(job.scenario, 1.0) for job in jobs]
        shares = [opts.budget_s * w / sum(weights) for w in weights]
        if min(shares) < MIN_JOB_BUDGET_S:
            raise ConfigError(f"--budget {budget_text} leaves {min(shares):.0f} s for a scenario on "
                              f"{host} ({len(jobs)} scenarios); give each at least {MIN_JOB_BUDGET_S:.0f} s")
        for job, share in zip(jobs, shares, strict=True):
            commands[job.id] = ["tune", "--budget-s", f"{share:.1f}",
                                "--safety-margin", str(opts.safety_margin), "--trial-s", str(opts.trial_s)]
    return commands


def main(args: argparse.Namespace) -> int:
    def warn(line: str) -> None:
        print(f"fleet: warning: {line}", file=sys.stderr)

    if args.resume:
        state, settings, inventory, run_dir, tune = _resume(args)
        specs, hosts = None, list(state.nodes)
    else:
        settings, inventory, run_dir, specs, tune = _new_run(args, warn)
        state, hosts = None, list(specs)
        run_dir.mkdir(parents=True)
        tune.save(run_dir)
    print(f"fleet: tune {run_dir} ({tune.budget_s:.0f} s of tuning per node, plus setup)", file=sys.stderr)
    with Progress(hosts, live=False if args.plain else None) as progress:
        state = orchestrate.execute(run_dir, inventory, specs, settings, state=state, progress=progress,
                                    verbosity=args.verbose, commands=tune.commands)
    return _file_results(run_dir, state, inventory, settings, warn)


def _new_run(args: argparse.Namespace, warn: tuning_store.Warn
             ) -> tuple[RunSettings, Inventory, Path, dict[str, list[RunSpec]], TuneFile]:
    """Settings, plan and per-job commands of a new tuning run (nothing written yet)."""
    budget_text = args.budget or DEFAULT_BUDGET
    base = TuneOptions()
    opts = TuneOptions(budget_s=parse_budget(budget_text),
                       safety_margin=base.safety_margin if args.safety_margin is None else args.safety_margin,
                       trial_s=base.trial_s if args.trial_s is None else args.trial_s)
    try:
        opts.check()
    except HarnessError as exc:
        raise ConfigError(str(exc)) from None
    settings = validate(RunSettings(
        inventory=args.inventory or str(default_inventory()), tasks=args.task, scenarios=args.scenario,
        profile=args.profile or "smoke", runs_dir=args.runs_dir, artifacts=args.artifacts,
        synthetic=args.synthetic, synthetic_variant=args.synthetic_variant or "",
        synthetic_samples=args.synthetic_samples, limit=[h for h in args.limit.split(",") if h],
        cache_dir=args.cache_dir,
    ))
    inventory = load_inventory(settings.inventory, settings.limit or None)
    run_id = args.run_id or f"tune-{orchestrate.new_run_id()}"
    run_dir = Path(settings.runs_dir) / run_id
    if run_dir.exists():
        raise ConfigError(f"run directory {run_dir} exists; use --resume {run_id} or another --run-id")
    specs = tune_specs(inventory, settings, run_id, warn)
    commands = job_commands(specs, opts, budget_text)
    settings.bench_timeout_s = int(opts.budget_s + JOB_SLACK_S)
    return settings, inventory, run_dir, specs, TuneFile(opts.budget_s, opts.safety_margin, opts.trial_s,
                                                         commands)


def _given(value: Any) -> bool:
    return value is not None and value is not False and value != "" and value != []


def _resume(args: argparse.Namespace) -> tuple[RunState, RunSettings, Inventory, Path, TuneFile]:
    """The run as it was planned (run.json, tune.json), its inventory still holding its hosts."""
    given = [flag for dest, flag in PLAN_OPTIONS.items() if _given(getattr(args, dest))]
    if given:
        raise ConfigError(f"--resume tunes again as the run was planned, its budget included; "
                          f"drop {'/'.join(given)}")
    candidate = Path(args.resume)
    run_dir = candidate if (candidate / "run.json").exists() else Path(args.runs_dir) / args.resume
    run_json = run_dir / "run.json"
    if not run_json.exists():
        raise RunStateError(f"no run {args.resume!r}: {run_json} does not exist")
    state = RunState.load(run_json)
    tune = TuneFile.load(run_dir, state)
    settings, inventory = reopen(run_dir, state, args.cache_dir)
    return state, settings, inventory, run_dir, tune


def _file_results(run_dir: Path, state: RunState, inventory: Inventory, settings: RunSettings,
                  warn: tuning_store.Warn) -> int:
    """Store what this attempt tuned, rewrite the run's summary, print it; 1 when anything failed.

    Only the jobs of this attempt are filed, so a resume leaves the stored files of the nodes
    that had succeeded as they are (another tune run may have replaced them since).
    """
    attempted = set(state.attempts[-1]["jobs"]) if state.attempts else set()
    root = tuning_store.store_root(settings.runs_dir)
    stored = tuning_store.store_run(run_dir, state, inventory, root, jobs=attempted)
    tuning_store.write_tune_summary(run_dir, state, inventory)
    (run_dir / "tuning.md").write_text(tuning_markdown(run_dir), encoding="utf-8")
    print_tuned(state, run_dir)
    for host, task, scenario, why in stored.failed:
        warn(f"{host} {task} {scenario}: tuning failed ({why}); fleet run --tuned runs it with defaults")
    for path in stored.paths:
        print(f"fleet: stored {path}", file=sys.stderr)
    failed = [j for j in state.jobs.values() if j.status != OK]
    if failed:
        again = f"fleet tune --runs-dir {settings.runs_dir} --resume {state.run_id}"
        print(f"fleet: {len(failed)} of {len(state.jobs)} jobs failed; redo them: {again}", file=sys.stderr)
    return 0 if not stored.failed and not failed else 1


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
