"""Run the MLCommons v3.1 submission checker from a local inference checkout, and read its verdict.

The official checker logs everything to stderr as `[time file:line LEVEL] message`; an empty
tree passes with Results=0, and some inputs crash it without a SUMMARY line. So the verdict
is: SUMMARY says OK, the exit code is 0, and the Results count equals what we expect
(reference section 10.2).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import SubmissionError

CHECKER = Path("tools") / "submission" / "submission_checker.py"
_RESULT = re.compile(r"\] Results (\S+) (.+)$")
_NO_RESULT = re.compile(r"\] NoResults (\S+)$")
_TOTALS = re.compile(r"Results=(\d+), NoResults=(\d+), Power Results=(\d+)")
_ERROR = re.compile(r"^\[[^\]]* (ERROR|WARNING)\] (.*)$")


@dataclass
class OfficialVerdict:
    returncode: int | None
    summary_ok: bool | None  # None: no SUMMARY line (the checker crashed)
    results: dict[str, str] = field(default_factory=dict)  # result path -> value
    no_results: list[str] = field(default_factory=list)
    total_results: int | None = None
    total_no_results: int | None = None
    errors: list[str] = field(default_factory=list)

    def ok(self, expected: int | None = None) -> bool:
        if not self.summary_ok or self.returncode not in (0, None):
            return False
        return expected is None or self.total_results == expected

    def render(self, expected: int | None = None) -> str:
        if self.summary_ok is None:
            head = "official checker crashed (no SUMMARY line)"
        else:
            head = "official checker: " + (
                "submission looks OK" if self.summary_ok else "submission has errors"
            )
        lines = [f"{head}; Results={self.total_results}, NoResults={self.total_no_results}"]
        if expected is not None and self.total_results != expected:
            lines.append(f"official Results={self.total_results} but {expected} results are expected")
        lines += [f"official: NoResults {key}" for key in self.no_results]
        lines += [f"official: {msg}" for msg in self.errors[:50]]
        lines.append("OFFICIAL VERDICT: " + ("PASS" if self.ok(expected) else "FAIL"))
        return "\n".join(lines) + "\n"


def parse_output(text: str, returncode: int | None = None) -> OfficialVerdict:
    """Read the checker's log lines (any order of stdout/stderr)."""
    verdict = OfficialVerdict(returncode=returncode, summary_ok=None)
    for line in text.splitlines():
        if "SUMMARY: submission looks OK" in line:
            verdict.summary_ok = True
        elif "SUMMARY: submission has errors" in line:
            verdict.summary_ok = False
        match = _TOTALS.search(line)
        if match and verdict.total_results is None:
            verdict.total_results = int(match.group(1))
            verdict.total_no_results = int(match.group(2))
            continue
        match = _NO_RESULT.search(line)
        if match:
            verdict.no_results.append(match.group(1))
            continue
        match = _RESULT.search(line)
        if match:
            verdict.results[match.group(1)] = match.group(2)
            continue
        match = _ERROR.match(line)
        if match and match.group(1) == "ERROR" and "SUMMARY" not in line:
            verdict.errors.append(match.group(2))
    return verdict


def checker_path(inference_src: str | Path) -> Path:
    path = Path(inference_src) / CHECKER
    if not path.is_file():
        raise SubmissionError(
            f"{path} does not exist: --official needs a checkout of github.com/mlcommons/inference "
            "at tag v3.1 (git clone --branch v3.1 https://github.com/mlcommons/inference)"
        )
    return path


def run_official(
    inference_src: str | Path, root: Path, submitter: str | None = None, timeout_s: float = 3600
) -> OfficialVerdict:
    """Run submission_checker.py on `root` (stdlib only, so this Python will do)."""
    script = checker_path(inference_src)
    with tempfile.TemporaryDirectory(prefix="fleet-official-") as scratch:
        cmd = [
            sys.executable,
            str(script),
            "--input",
            str(Path(root).resolve()),
            "--version",
            "v3.1",
            "--csv",
            str(Path(scratch) / "summary.csv"),
        ]
        if submitter:
            cmd += ["--submitter", submitter]
        try:
            proc = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise SubmissionError(f"the official checker did not finish within {timeout_s:.0f} s") from None
    return parse_output(proc.stdout + "\n" + proc.stderr, proc.returncode)
