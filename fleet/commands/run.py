"""`fleet run`: plan, provision, deploy, stage assets, benchmark and collect across a lab.

    fleet run --task resnet50 --profile smoke                    # inventory/localhost.ini
    fleet run --inventory lab.ini --task resnet50 [--scenario Offline ...] [--synthetic]
    fleet run --resume RUN_ID                                    # redo what failed or is missing
    fleet run --inventory lab.ini --task resnet50 --tuned        # values stored by fleet tune

Ends with a table per node x scenario and exit status 1 when any job failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet import orchestrate, plan, tuning_store
from fleet.config import PROFILES, SYNTHETIC_VARIANTS, RunSettings, default_inventory, validate
from fleet.errors import ConfigError, RunStateError
from fleet.finish import after_collection, verdict_line
from fleet.harness.rules import v3_1 as rules
from fleet.inventory import Inventory, load_inventory
from fleet.progress import Progress, print_summary
from fleet.runstate import INFEASIBLE, OK, RunState


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="run MLPerf benchmarks on every node of an inventory",
        description="Plan, provision, deploy, stage assets, benchmark and collect, on all nodes at once.",
    )
    p.add_argument(
        "--inventory", "-i", help="Ansible inventory (INI or YAML); default: this machine as an edge node"
    )
    p.add_argument(
        "--task",
        "-t",
        action="append",
        default=[],
        help=f"task ({', '.join(rules.TASK_TO_MODEL)}); repeatable",
    )
    p.add_argument(
        "--scenario",
        "-s",
        action="append",
        default=[],
        help="only these scenarios (default: all the category requires)",
    )
    p.add_argument(
        "--modes", default="", help="comma list of modes (default: profile's; smoke: performance,accuracy)"
    )
    p.add_argument("--profile", choices=PROFILES, default="smoke")
    p.add_argument("--submitter", default="MLPerfFleet", help="organization name in the submission")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (default: ./runs)")
    p.add_argument("--artifacts", help="artifact store: DIR/<task>/ holds the model and dataset")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="generate synthetic assets on the nodes (default without --artifacts)",
    )
    p.add_argument(
        "--synthetic-variant", choices=SYNTHETIC_VARIANTS, default="",
        help="synthetic model size (default: small for --profile smoke, full for submission)"
    )
    p.add_argument("--synthetic-samples", type=int, help="synthetic dataset size")
    p.add_argument("--limit", default="", help="comma list of inventory hosts to use")
    p.add_argument("--run-id", help="name of the run directory (default: date-time-random)")
    p.add_argument("--resume", metavar="RUN_ID", help="rerun only the failed or missing jobs of a run")
    p.add_argument("--tuned", action="store_true",
                   help="use what fleet tune stored per node (runs/tuning/<system>/<task>.json)")
    p.add_argument(
        "--cache-dir", default="", help="controller cache for wheelhouses (default ~/.cache/mlperf-fleet)"
    )
    p.add_argument("--job-timeout", type=int, default=0, help="seconds one scenario may run on a node")
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="ansible verbosity (-vvv) in the run's ansible logs",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    applied = None
    if args.resume and args.tuned:
        raise ConfigError("--resume reruns a run as planned, its tuned values included; drop --tuned")
    if args.resume:
        state, settings, inventory = _resume(args)
        specs = None
    else:
        settings = validate(
            RunSettings(
                inventory=args.inventory or str(default_inventory()),
                tasks=args.task,
                scenarios=args.scenario,
                modes=[m for m in args.modes.split(",") if m],
                profile=args.profile,
                submitter=args.submitter,
                runs_dir=args.runs_dir,
                artifacts=args.artifacts,
                synthetic=args.synthetic,
                synthetic_variant=args.synthetic_variant,
                synthetic_samples=args.synthetic_samples,
                limit=[h for h in args.limit.split(",") if h],
                cache_dir=args.cache_dir,
                bench_timeout_s=args.job_timeout,
            )
        )
        inventory = load_inventory(settings.inventory, settings.limit or None)
        run_id = args.run_id or orchestrate.new_run_id()
        skipped: list[str] = []  # said once the plan stands (a refused plan is one line)
        specs = plan.build(inventory, settings, run_id, skip=skipped.append)
        for line in [*skipped, *plan.compliance_lines(settings), *synthetic_needs(settings)]:
            _say(line)
        if args.tuned:  # one spec per scenario with the stored values (fleet/tuning_store.py)
            specs, applied = tuning_store.apply_stored(
                specs, inventory, tuning_store.store_root(settings.runs_dir), settings.profile, _warn
            )
        run_dir = Path(settings.runs_dir) / run_id
        if run_dir.exists():
            raise ConfigError(f"run directory {run_dir} exists; use --resume {run_id} or another --run-id")
        state = None
    run_dir = Path(settings.runs_dir) / (state.run_id if state else run_id)
    hosts = list(state.nodes) if state else list(specs or {})
    print(f"fleet: run {run_dir}", file=sys.stderr)
    with Progress(hosts, live=False if args.plain else None) as progress:
        state = orchestrate.execute(run_dir, inventory, specs, settings, state=state, progress=progress,
                                    verbosity=args.verbose)  # fmt: skip
    if applied:
        tuning_store.after_tuned_run(run_dir, applied, _warn)
    finished = after_collection(run_dir, state, say_verdict=False)
    print_summary(state)
    sys.stdout.flush()
    if finished.check_verdict:  # last: what was checked, and what a submission still needs
        print(verdict_line(run_dir, finished), file=sys.stderr)
    failed = [j for j in state.jobs.values() if j.status != OK]
    if failed:
        again = f"fleet run --runs-dir {settings.runs_dir} --resume {state.run_id}"
        infeasible = [j.id for j in failed if j.status == INFEASIBLE]
        what = f"{len(failed) - len(infeasible)} of {len(state.jobs)} jobs failed"
        if infeasible:
            what += f" and {', '.join(infeasible)} cannot be VALID on its node (see the note)"
        print(f"fleet: {what}; redo them: {again}", file=sys.stderr)
        return 1
    return 0


def synthetic_needs(settings: RunSettings) -> list[str]:
    """Lines that say, before anything runs, what each sized synthetic set will take on a node."""
    from fleet.harness.synthetic import needs

    if not settings.uses_synthetic:
        return []
    lines = []
    for task in settings.tasks:
        line = needs(task, settings.synthetic_samples_for(task))
        if line:
            lines.append(f"{task}: {line}")
    return lines


def _say(line: str) -> None:
    print(f"fleet: {line}", file=sys.stderr)


def _warn(line: str) -> None:
    print(f"fleet: warning: {line}", file=sys.stderr)


def _resume(args: argparse.Namespace) -> tuple[RunState, RunSettings, object]:
    candidate = Path(args.resume)
    run_dir = candidate if (candidate / "run.json").exists() else Path(args.runs_dir) / args.resume
    if not (run_dir / "run.json").exists():
        raise RunStateError(f"no run {args.resume!r}: {run_dir / 'run.json'} does not exist")
    if args.task or args.scenario or args.inventory or args.artifacts:
        raise ConfigError(
            "--resume reruns a run as it was planned; drop --task/--scenario/--inventory/--artifacts"
        )
    if (run_dir / "tune.json").exists():
        raise ConfigError(f"{run_dir} is a tuning run: resume it with fleet tune --runs-dir "
                          f"{run_dir.parent} --resume {run_dir.name}")
    state = RunState.load(run_dir / "run.json")
    settings, inventory = reopen(run_dir, state, args.cache_dir)
    return state, settings, inventory


def reopen(run_dir: Path, state: RunState, cache_dir: str) -> tuple[RunSettings, Inventory]:
    """The settings and inventory a resumed run (fleet run or tune) goes on with.

    The run's own settings, with its runs folder where it lies now and a new --cache-dir if
    one is given (the wheelhouse cache may have moved); one line when the saved settings are
    unusable or a host of the run has left the inventory.
    """
    try:
        settings = RunSettings.from_dict(state.settings)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RunStateError(f"{run_dir / 'run.json'} is corrupt (settings: {exc!r}); cannot resume") from None
    settings.runs_dir = str(run_dir.parent.resolve())
    if cache_dir:
        settings.cache_dir = str(Path(cache_dir).expanduser().resolve())
    inventory = load_inventory(settings.inventory)
    missing = sorted(set(state.nodes) - {n.name for n in inventory})
    if missing:
        raise ConfigError(
            f"hosts {', '.join(missing)} of run {state.run_id} are no longer in {settings.inventory}"
        )
    return settings, inventory
