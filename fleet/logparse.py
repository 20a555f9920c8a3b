"""LoadGen and MLPerf tool outputs -> typed records, shared by the checker and the reports.

Parses `mlperf_log_detail.txt` (`:::MLLOG` JSON lines), `mlperf_log_summary.txt`,
`accuracy.txt` (accuracy script output + `hash=` line) and the compliance `verify_*.txt`.
The rules of reading follow the v3.1 checker's `log_parser.py`: the first occurrence of a
key wins, every record must carry `metadata.is_error`, and a `:::MLLOG` line that is not
valid JSON makes the log unreadable (reported, never raised).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MLLOG_PREFIX = ":::MLLOG"
HASH_RE = re.compile(r"^hash=([\w\d]+)$")


@dataclass(frozen=True)
class LogRecord:
    """One `:::MLLOG` record."""

    key: str
    value: Any
    line_no: int
    is_error: bool
    is_warning: bool


@dataclass
class DetailLog:
    """mlperf_log_detail.txt: first value per key, plus the error/warning records."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[LogRecord] = field(default_factory=list)
    warnings: list[LogRecord] = field(default_factory=list)
    # (line number, reason) for lines the official parser would reject.
    invalid_lines: list[tuple[int, str]] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def number(self, key: str) -> float | None:
        """The key as a float; None when missing or not numeric."""
        value = self.values.get(key)
        if isinstance(value, bool) or value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @property
    def readable(self) -> bool:
        return not self.invalid_lines

    @property
    def validity(self) -> str | None:
        return self.values.get("result_validity")

    @property
    def scenario(self) -> str | None:
        return self.values.get("effective_scenario")

    @property
    def test_mode(self) -> str | None:
        return self.values.get("effective_test_mode")

    def latency_percentile_ns(self, percentile: float) -> float | None:
        """A latency percentile in ns (per query for MultiStream, as loadgen reports it)."""
        name = f"{percentile:.2f}"
        for key in (f"result_{name}_percentile_per_query_latency_ns", f"result_{name}_percentile_latency_ns"):
            value = self.number(key)
            if value is not None:
                return value
        return None


def parse_detail(path: Path) -> DetailLog:
    """Read a detail log. Missing file -> FileNotFoundError (callers report it)."""
    log = DetailLog(path=Path(path))
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.startswith(MLLOG_PREFIX):
                continue
            try:
                record = json.loads(line[len(MLLOG_PREFIX) :])
                key = record["key"]
                meta = record["metadata"]
                is_error = meta["is_error"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                log.invalid_lines.append((line_no, f"{type(exc).__name__}: {exc}"))
                continue
            item = LogRecord(
                key=key,
                value=record.get("value"),
                line_no=line_no,
                is_error=bool(is_error),
                is_warning=bool(meta.get("is_warning", False)),
            )
            if item.is_error:
                log.errors.append(item)
            if item.is_warning:
                log.warnings.append(item)
            log.values.setdefault(key, item.value)
    return log


@dataclass
class SummaryLog:
    """mlperf_log_summary.txt as `key : value` pairs (first occurrence wins)."""

    path: Path
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def valid(self) -> bool | None:
        value = self.fields.get("Result is")
        return None if value is None else value.strip() == "VALID"

    @property
    def scenario(self) -> str | None:
        return self.fields.get("Scenario")

    def number(self, key: str) -> float | None:
        try:
            return float(self.fields[key])
        except (KeyError, ValueError):
            return None


_SUMMARY_LINE = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")


def parse_summary(path: Path) -> SummaryLog:
    summary = SummaryLog(path=Path(path))
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SUMMARY_LINE.match(line)
        if match and match.group(2):
            summary.fields.setdefault(match.group(1), match.group(2))
    return summary


@dataclass
class AccuracyText:
    """accuracy.txt: every metric value found per metric name, and the hash line."""

    path: Path
    lines: list[str]
    metrics: dict[str, list[float]] = field(default_factory=dict)
    hash: str | None = None

    def first(self, name: str) -> float | None:
        values = self.metrics.get(name)
        return values[0] if values else None


def parse_accuracy_text(
    text: str, metrics: Iterable[tuple[str, str]], path: Path | None = None
) -> AccuracyText:
    """Apply each (name, regex) with `re.match` to every line, as the v3.1 checker does."""
    lines = text.splitlines()
    result = AccuracyText(path=Path(path) if path else Path("accuracy.txt"), lines=lines)
    compiled = [(name, re.compile(pattern)) for name, pattern in metrics]
    for line in lines:
        hash_match = HASH_RE.match(line)
        if hash_match and result.hash is None:
            result.hash = hash_match.group(1)
        for name, regex in compiled:
            match = regex.match(line)
            if match:
                try:
                    result.metrics.setdefault(name, []).append(float(match.group(1)))
                except ValueError:
                    continue
    return result


def parse_accuracy(path: Path, metrics: Iterable[tuple[str, str]]) -> AccuracyText:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return parse_accuracy_text(text, metrics, path)


@dataclass
class VerifyResult:
    """A compliance verify_accuracy.txt / verify_performance.txt."""

    path: Path
    passed: bool
    verdict: str  # the TEST PASS / TEST FAIL line, or "" when none
    numbers: dict[str, float] = field(default_factory=dict)


_VERIFY_NUMBER = re.compile(r"^\s*([A-Za-z_ ]+?)\s*[=:]\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


def parse_verify(path: Path) -> VerifyResult:
    """`passed` mirrors the checker: the text contains `TEST PASS` anywhere."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    verdict = ""
    numbers: dict[str, float] = {}
    for line in text.splitlines():
        if line.strip().startswith("TEST PASS") or line.strip().startswith("TEST FAIL"):
            verdict = verdict or line.strip()
        match = _VERIFY_NUMBER.match(line)
        if match:
            numbers.setdefault(match.group(1).strip(), float(match.group(2)))
    return VerifyResult(path=Path(path), passed="TEST PASS" in text, verdict=verdict, numbers=numbers)
