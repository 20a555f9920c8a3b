"""`python -m fleet.harness`: run | synth | facts.

    python -m fleet.harness synth --task resnet50 --out ASSETS [--samples 1024] [--variant small] [--seed 0]
    python -m fleet.harness run --task resnet50 --scenario Offline --mode performance \\
        --model ASSETS/resnet50_v1.onnx --dataset ASSETS/imagenet --out OUT [--profile smoke|submission]
        [--backend onnxruntime|null] [--threads N] [--batch-size N] [--execution-provider cpu|cuda|tensorrt]
    python -m fleet.harness run --spec spec.json --out OUT      (flags given as well override the spec)
    python -m fleet.harness tune --spec spec.json --out OUT [--budget-s N] [--safety-margin 0.05]
    python -m fleet.harness facts

--scenario and --mode may be repeated or comma-separated; modes run in the order
performance, accuracy, TEST01, TEST04, TEST05 for each scenario. Any problem a user can fix is
one line on stderr and exit status 1 (no traceback); a run that fails is recorded in
OUT/manifest.json and also makes the exit status 1. A scenario the node cannot make VALID
(Server: one sample already over the latency bound) is recorded as `infeasible` without
running LoadGen; when that is the only problem the exit status is 3 and stderr's last line
says why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from fleet import __version__
from fleet.harness.errors import HarnessError, one_line
from fleet.harness.spec import RunSpec, SpecError, Tuning

PROG = "fleet.harness"
# Exit status of a run whose only problem is a scenario this node cannot make VALID.
EXIT_INFEASIBLE = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a HarnessError (one line, exit 1)."""

    def error(self, message: str) -> NoReturn:
        raise HarnessError(message)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=f"python -m {PROG}", description="MLPerf Inference v3.1 node harness.")
    parser.add_argument("--version", action="version", version=f"mlperf-fleet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run scenarios and modes with LoadGen")
    run.add_argument("--spec", type=Path, help="spec.json (RunSpec); flags override its fields")
    run.add_argument("--task")
    run.add_argument("--scenario", action="append", help="SingleStream|MultiStream|Server|Offline")
    run.add_argument("--mode", action="append", help="performance|accuracy|TEST01|TEST04|TEST05")
    run.add_argument("--model", help="model file (e.g. resnet50_v1.onnx)")
    run.add_argument("--dataset", help="dataset directory")
    run.add_argument("--out", type=Path, required=True, help="results directory")
    run.add_argument("--profile", help="smoke (seconds) | submission (full v3.1 rules)")
    run.add_argument("--backend", help="onnxruntime | pytorch | null (default: the task's own, "
                     "pytorch for rnnt, dlrm-v2 and gptj, onnxruntime for the others)")
    run.add_argument("--execution-provider", help="onnxruntime: cpu (default) | cuda | tensorrt")
    run.add_argument("--graph-optimization", help="onnxruntime: disable|basic|extended|all (default)")
    run.add_argument("--threads", type=int, help="backend intra-op threads (default: from the node)")
    run.add_argument("--precision", help="fp32 (default) | bf16 | fp16 (pytorch, where the device has it)")
    run.add_argument("--batch-size", type=int, help="Offline batch / Server max batch (default: measured)")
    run.add_argument("--target-qps", type=float, help="Offline expected / Server target QPS")
    run.add_argument("--expected-latency-ms", type=float, help="SingleStream/MultiStream expected latency")
    run.add_argument("--server-batch-timeout-ms", type=float, help="Server batcher fill timeout (default 0)")
    run.add_argument("--synthetic", action="store_true", help="mark the assets as synthetic")
    run.add_argument("--cache", type=Path, help="preprocessed-data cache (default ~/.cache/mlperf-fleet)")

    from fleet.harness.tuning.command import add_parser as add_tune_parser  # run's flags + tuning options

    add_tune_parser(sub, run)

    synth = sub.add_parser("synth", help="make synthetic assets (no downloads)")
    synth.add_argument("--task", required=True)
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--samples", type=int, default=None,
                       help="dataset size (default: a small set; the submission profile needs the rules' "
                            "performance sample count, which fleet run asks for)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--variant", default="full", help="full (official topology) | small (1/16 channels)")

    sub.add_parser("facts", help="print this host's facts as JSON")
    return parser


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The RunSpec of a `run` command line (a --spec file with flags layered on top)."""
    spec = RunSpec.read(args.spec) if args.spec else None
    if spec is None:
        if not args.task:
            raise HarnessError("run needs --task (or --spec)")
        spec = RunSpec(task=args.task, scenarios=[], modes=["performance"])
    updates: dict = {}
    for field_name, value in (("task", args.task), ("profile", args.profile), ("backend", args.backend),
                              ("model", args.model), ("dataset", args.dataset)):
        if value is not None:
            updates[field_name] = value
    if _split(args.scenario):
        updates["scenarios"] = _split(args.scenario)
    if _split(args.mode):
        updates["modes"] = _split(args.mode)
    if args.synthetic:
        updates["synthetic"] = True
    tuning = spec.tuning
    for field_name, value in (("threads", args.threads), ("batch_size", args.batch_size),
                              ("execution_provider", args.execution_provider),
                              ("graph_optimization", args.graph_optimization),
                              ("precision", args.precision),
                              ("server_batch_timeout_ms", args.server_batch_timeout_ms)):
        if value is not None:
            tuning = replace(tuning, **{field_name: value})
    if args.target_qps is not None:
        tuning = replace(tuning, offline_expected_qps=args.target_qps, server_target_qps=args.target_qps)
    if args.expected_latency_ms is not None:
        tuning = replace(tuning, singlestream_expected_latency_ms=args.expected_latency_ms,
                         multistream_expected_latency_ms=args.expected_latency_ms)
    for name in ("threads", "batch_size"):
        value = getattr(tuning, name)
        if value is not None and value < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be at least 1")
    return replace(spec, tuning=tuning if isinstance(tuning, Tuning) else Tuning(), **updates)


def _run(args: argparse.Namespace) -> int:
    from fleet.harness.runner import INFEASIBLE, run_spec

    entries = run_spec(spec_from_args(args), args.out, cache_root=args.cache)
    bad = [e for e in entries if e["outcome"] != "ok"]
    if bad and all(e["outcome"] == INFEASIBLE for e in bad):
        print(f"{PROG}: {bad[0]['error']}", file=sys.stderr)  # the controller shows this line
        return EXIT_INFEASIBLE
    return 1 if bad else 0


def _tune(args: argparse.Namespace) -> int:
    from fleet.harness.tuning.command import main as tune_main

    return tune_main(args)


def _synth(args: argparse.Namespace) -> int:
    from fleet.harness.synthetic import synthesize

    marker = synthesize(args.task, args.out, args.samples, args.seed, args.variant)
    print(json.dumps(marker, indent=2, sort_keys=True))
    return 0


def _facts(args: argparse.Namespace) -> int:
    from fleet.harness.hostfacts import host_facts

    print(json.dumps(host_facts(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise HarnessError("a command is needed: run, tune, synth or facts (see --help)")
        return {"run": _run, "tune": _tune, "synth": _synth, "facts": _facts}[args.command](args)
    except (HarnessError, SpecError) as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished runs are in the manifest", file=sys.stderr)
        return 130
