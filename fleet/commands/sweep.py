"""`fleet sweep --matrix nightly.yaml`: every task of a matrix on every node it names, one run."""

from __future__ import annotations

import argparse
from pathlib import Path

from fleet.plan import jobs_of
from fleet.sweep import new_run_id, prepare


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a whole matrix (tasks x scenarios x node groups) as one run",
        description="Run every job of a matrix file as one run (each node works through its own queue, "
        "all nodes at once), store the results in the history and write the trend page. Exit status "
        "3 when a regression or a broken job is flagged.",
    )
    p.add_argument("--matrix", required=True, help="the matrix file (see examples/nightly.yaml)")
    p.add_argument("--runs-dir", help="runs folder (default: the matrix's runs_dir, else ./runs)")
    p.add_argument("--dry-run", action="store_true", help="check the matrix and print each node's queue")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_id = new_run_id()
    prepared = prepare(Path(args.matrix), run_id)
    if args.dry_run:
        for host, specs in prepared.specs.items():
            queue = ", ".join(f"{s.task} [{' '.join(s.scenarios)}]" for s in specs)
            print(f"{host}: {queue}")
        matrix = prepared.matrix
        jobs = len(jobs_of(prepared.specs))
        extra = len(jobs_of(prepared.specs, matrix.repeats)) - jobs
        print(f"{jobs} jobs, then {extra} measured repeats ({matrix.repeats} per performance job, "
              f"interleaved); nodes that share hardware: {matrix.shared_hardware}")
        return 0
    from fleet.sweep import run_sweep

    runs_dir = Path(args.runs_dir or prepared.matrix.runs_dir or "runs").expanduser().resolve()
    return run_sweep(prepared, runs_dir, run_id)
