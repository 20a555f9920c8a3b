"""LoadGen configuration: mlperf.conf / user.conf / audit.config text -> TestSettings.

The harness does not call `TestSettings.FromConfig`: the installed LoadGen embeds a newer
round's mlperf.conf and loads it on the first call (seeds included, and seeds in user.conf
are ignored), and a second call in one process logs an error. Instead the three texts are
parsed here with LoadGen's own rules (`model.scenario.key = value`, `*` wildcards, the most
specific key wins, later files override earlier ones) and applied field by field, exactly as
FromConfig maps them. The texts written next to the results are therefore the settings the
run effectively used, and the detail log's `effective_*` lines show the same values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleet.harness.errors import HarnessError

_INT_KEYS = {
    # conf key -> TestSettings attribute (integers, same unit)
    "qsl_rng_seed": "qsl_rng_seed",
    "sample_index_rng_seed": "sample_index_rng_seed",
    "schedule_rng_seed": "schedule_rng_seed",
    "accuracy_log_rng_seed": "accuracy_log_rng_seed",
    "accuracy_log_sampling_target": "accuracy_log_sampling_target",
    "test05_qsl_rng_seed": "test05_qsl_rng_seed",
    "test05_sample_index_rng_seed": "test05_sample_index_rng_seed",
    "test05_schedule_rng_seed": "test05_schedule_rng_seed",
    "min_duration": "min_duration_ms",
    "max_duration": "max_duration_ms",
    "min_query_count": "min_query_count",
    "max_query_count": "max_query_count",
    "performance_sample_count_override": "performance_sample_count_override",
    "performance_issue_same_index": "performance_issue_same_index",
}
_BOOL_KEYS = {
    "test05": "test05",
    "print_timestamps": "print_timestamps",
    "performance_issue_unique": "performance_issue_unique",
    "performance_issue_same": "performance_issue_same",
    "sample_concatenate_permutation": "sample_concatenate_permutation",
}
_FLOAT_KEYS = {"accuracy_log_probability": "accuracy_log_probability"}
_MODES = {0: "SubmissionRun", 1: "AccuracyOnly", 2: "PerformanceOnly", 3: "FindPeakPerformance"}


def parse(text: str, origin: str = "conf") -> list[tuple[str, str, str, str]]:
    """(model, scenario, key, value) for every `model.scenario.key = value` line."""
    entries = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        lhs, sep, value = line.partition("=")
        parts = lhs.strip().split(".")
        if not sep or len(parts) != 3 or not value.strip():
            raise HarnessError(f"{origin}:{lineno}: expected 'model.scenario.key = value', got {raw!r}")
        entries.append((parts[0].strip(), parts[1].strip(), parts[2].strip(), value.strip()))
    return entries


def resolve(texts: Iterable[tuple[str, str]], model: str, scenario: str) -> dict[str, str]:
    """Values for (model, scenario) from (origin, text) pairs, later texts overriding earlier.

    Within one text the most specific key wins: model.scenario, model.*, *.scenario, *.*.
    """
    result: dict[str, str] = {}
    for origin, text in texts:
        rank: dict[str, int] = {}
        for m, s, key, value in parse(text, origin):
            if m not in (model, "*") or s not in (scenario, "*"):
                continue
            specificity = (m == model) * 2 + (s == scenario)
            if specificity >= rank.get(key, -1):
                rank[key] = specificity
                result[key] = value
    return result


def _num(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise HarnessError(f"LoadGen setting {key} = {value!r} is not a number") from None


def apply(settings: Any, values: dict[str, str], scenario: str, lg: Any) -> None:
    """Set `values` on a mlperf_loadgen.TestSettings the way FromConfig maps conf keys."""
    for key, value in values.items():
        if key in _INT_KEYS:
            exact = value.lstrip("-").isdigit()  # seeds exceed float precision
            setattr(settings, _INT_KEYS[key], int(value) if exact else int(_num(key, value)))
        elif key in _BOOL_KEYS:
            setattr(settings, _BOOL_KEYS[key], _num(key, value) != 0)
        elif key in _FLOAT_KEYS:
            setattr(settings, _FLOAT_KEYS[key], _num(key, value))
        elif key == "mode":
            settings.mode = getattr(lg.TestMode, _MODES[int(_num(key, value))])
        elif key == "target_latency":  # ms
            ns = round(_num(key, value) * 1e6)
            if scenario == "SingleStream":
                settings.single_stream_expected_latency_ns = ns
            elif scenario == "MultiStream":
                settings.multi_stream_expected_latency_ns = ns
            elif scenario == "Server":
                settings.server_target_latency_ns = ns
        elif key == "target_latency_percentile":
            pct = _num(key, value) / 100.0
            attr = {"SingleStream": "single_stream_target_latency_percentile",
                    "MultiStream": "multi_stream_target_latency_percentile",
                    "Server": "server_target_latency_percentile"}.get(scenario)
            if attr:
                setattr(settings, attr, pct)
        elif key == "target_qps":
            if scenario == "Server":
                settings.server_target_qps = _num(key, value)
            elif scenario == "Offline":
                settings.offline_expected_qps = _num(key, value)
        elif key == "samples_per_query":
            if scenario == "MultiStream":
                settings.multi_stream_samples_per_query = int(_num(key, value))
        elif key == "coalesce_queries":
            settings.server_coalesce_queries = _num(key, value) != 0
        elif key == "max_async_queries":
            settings.server_max_async_queries = int(_num(key, value))
        # Other keys (e.g. target_duration, another model's settings) do not apply here.


def fmt(value: float) -> str:
    """A conf value: integers as integers, floats with enough digits to round-trip."""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
