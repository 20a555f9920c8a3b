"""Read LoadGen's mlperf_log_detail.txt: `:::MLLOG {json}` records, first occurrence of a key wins."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.harness.rules import v3_1 as rules


@dataclass
class DetailLog:
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def result(self, scenario: str) -> tuple[float | None, str]:
        """The value the checker reports for this scenario and its unit (rules.RESULT_KEYS)."""
        key, unit, divisor = rules.RESULT_KEYS[scenario]
        value = self.values.get(key)
        try:
            return (float(value) / divisor if value is not None else None), unit
        except (TypeError, ValueError):
            return None, unit


def read_detail(path: Path) -> DetailLog:
    log = DetailLog()
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return log
    for line in text.splitlines():
        if not line.startswith(":::MLLOG"):
            continue
        try:
            record = json.loads(line[len(":::MLLOG"):])
        except ValueError:
            log.errors.append(f"unparsable detail-log line: {line[:120]}")
            continue
        key = record.get("key")
        if key is not None and key not in log.values:
            log.values[key] = record.get("value")
        if (record.get("metadata") or {}).get("is_error"):
            log.errors.append(f"{key}: {record.get('value')}")
    return log
