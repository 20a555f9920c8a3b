"""measurements/<sys>/<model>/<scen>/: the measurement json and a README that reproduces the run.

Only facts that are public go in: file names of weights (never their paths), checksums,
backend, tuning, the fleet command line. The README says when a result is a smoke run or
uses synthetic assets, so nobody mistakes it for a submission result.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

from fleet.harness.rules import v3_1 as rules

REQUIRED_MEASUREMENT_FIELDS = (
    "starting_weights_filename",
    "retraining",
    "input_data_types",
    "weight_data_types",
    "weight_transformations",
)
_EP_SHORT = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "tensorrt",
}


def implementation(run: dict[str, Any]) -> str:
    """The <impl> of measurement json names and code/<model>/<impl>: fleet-<backend>[-<ep>]."""
    backend = str(run.get("backend") or "unknown")
    ep = str(run.get("execution_provider") or "")
    short = _EP_SHORT.get(ep, ep.replace("ExecutionProvider", "").lower())
    name = f"fleet-{backend}" + (f"-{short}" if short else "")
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name)


def measurement_json(run: dict[str, Any]) -> dict[str, str]:
    precision = str(run.get("precision") or "fp32")
    if run.get("synthetic"):
        weights = "synthetic (fleet.harness.synthetic: official architecture, random weights)"
    else:
        weights = PurePath(str(run.get("model_path") or "")).name or str(run.get("model") or "")
    data = {
        "starting_weights_filename": weights,
        "retraining": "No",
        "input_data_types": precision,
        "weight_data_types": precision,
        "weight_transformations": "none" if precision == "fp32" else f"quantization to {precision}",
    }
    if run.get("model_sha256"):
        data["starting_weights_sha256"] = str(run["model_sha256"])
    return data


def readme(system: str, category: str, run: dict[str, Any], smoke: bool, run_id: str) -> str:
    task = run["task"]
    scenario = run["scenario"]
    model = rules.TASK_TO_MODEL[task]
    tuning = [
        f"{key}={run[key]}"
        for key in ("threads", "batch_size", "execution_provider")
        if run.get(key) is not None
    ]
    lines = [
        f"# {system}: {model} {scenario}",
        "",
        f"Measured by mlperf-fleet (run `{run_id}`), {run.get('backend', '')} backend"
        + (f" ({', '.join(tuning)})." if tuning else "."),
        "",
    ]
    if smoke:
        lines += [
            "**Smoke profile**: a short run with small sample counts that checks the pipeline. "
            "It is not a valid MLPerf result; rerun with `--profile submission`.",
            "",
        ]
    if run.get("synthetic"):
        lines += [
            "**Synthetic assets**: the model has the official architecture with random weights and the "
            "dataset is teacher-labelled. The numbers say nothing about the real model's accuracy.",
            "",
        ]
    lines += [
        "## Reproduce",
        "",
        f"1. In your Ansible inventory, give the machine `system_name={system}` and `category={category}`,",
        "   and stage the official model and dataset in the fleet artifact store.",
        "2. Run the benchmark, its accuracy run and the compliance tests, then merge:",
        "",
        "```",
        f"fleet run --inventory INVENTORY --task {task} --profile submission",
        "fleet submit RUN_ID --submitter ORG --division closed",
        "fleet check RUN_ID",
        "```",
        "",
        f"`user.conf` and `mlperf.conf` in this directory are the ones LoadGen used for {scenario}. "
        "On the node, the same run is `python -m fleet.harness run --spec spec.json --out DIR` "
        f"with task `{task}` and scenario `{scenario}`.",
        "",
    ]
    return "\n".join(lines)
