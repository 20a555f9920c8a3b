"""Where things are: run directories, the tree inside them, and the submission's file names."""

from __future__ import annotations

import json
from pathlib import Path

from fleet.errors import SubmissionError

DIVISIONS = ("closed", "open", "network")
TREE_DIR = "submission"
ASSEMBLY_RECORD = "assembly.json"
CHECK_FILE = "check.txt"
REPORT_DIR = "report"

SUMMARY = "mlperf_log_summary.txt"
DETAIL = "mlperf_log_detail.txt"
ACCURACY_JSON = "mlperf_log_accuracy.json"
ACCURACY_TXT = "accuracy.txt"
TRACE = "mlperf_log_trace.json"
VERIFY_ACCURACY = "verify_accuracy.txt"
VERIFY_PERFORMANCE = "verify_performance.txt"
BASELINE_ACCURACY = "baseline_accuracy.txt"
COMPLIANCE_ACCURACY = "compliance_accuracy.txt"
MAX_ACCURACY_LOG_BYTES = 10 * 1024
MAX_FILE_BYTES = 50 * 1024 * 1024


def resolve_run_dir(ref: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A run id (under runs_dir) or a path to a run directory -> that directory."""
    for candidate in (Path(runs_dir) / str(ref), Path(ref)):
        if candidate.is_dir() and ((candidate / "raw").is_dir() or (candidate / "run.json").is_file()):
            return candidate
    raise SubmissionError(
        f"no run directory {ref!r}: expected {Path(runs_dir) / str(ref)} (or a path) with raw/ inside; "
        "give a run id from `ls runs` or --runs-dir"
    )


def is_tree(path: Path) -> bool:
    """A submission tree root holds at least one division directory."""
    return path.is_dir() and any((path / div).is_dir() for div in DIVISIONS)


def run_id(run_dir: Path) -> str:
    """The run's id from run.json, else the directory name."""
    try:
        data = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        data = None
    return str(data.get("run_id") or Path(run_dir).name) if isinstance(data, dict) else Path(run_dir).name
