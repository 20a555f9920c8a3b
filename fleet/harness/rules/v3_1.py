"""MLPerf Inference v3.1 rules as data: the one place to read a seed, a bound or a count.

Values come from the v3.1 `mlperf.conf`, the v3.1 submission checker's MODEL_CONFIG and the
compliance audit configs (see shared/reference/). A later round is a new module with the same
names, not edits across the code. This module is imported on nodes: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ROUND = "v3.1"

SCENARIOS: tuple[str, ...] = ("SingleStream", "MultiStream", "Server", "Offline")
CATEGORIES: tuple[str, ...] = ("edge", "datacenter")
MODES: tuple[str, ...] = ("performance", "accuracy", "TEST01", "TEST04", "TEST05")
COMPLIANCE_TESTS: tuple[str, ...] = ("TEST01", "TEST04", "TEST05")


@dataclass(frozen=True)
class Seeds:
    qsl_rng_seed: int
    sample_index_rng_seed: int
    schedule_rng_seed: int


SEEDS = Seeds(
    qsl_rng_seed=148687905518835231,
    sample_index_rng_seed=520418551913322573,
    schedule_rng_seed=811580660758947900,
)
TEST05_SEEDS = Seeds(
    qsl_rng_seed=793197339507417767,
    sample_index_rng_seed=255610748586851044,
    schedule_rng_seed=352213341366340113,
)

# TEST01: accuracy logging during a performance run.
TEST01_ACCURACY_LOG_RNG_SEED = 720381539243781796
# TEST04: the same sample issued again and again (catches result caching).
TEST04_ISSUE_SAME_INDEX = 3


@dataclass(frozen=True)
class ScenarioRules:
    """Per-scenario defaults of mlperf.conf v3.1 (`*.<Scenario>.*`)."""

    min_duration_ms: int
    min_query_count: int
    target_latency_percentile: float
    samples_per_query: int = 1
    # Checker minimum query count (only enforced for Offline in v3.1; others use early stopping).
    checker_min_query_count: int = 1
    # Loadgen's own early-stopping minimum (Submission_Guidelines), enforced via result_validity.
    early_stopping_min_queries: int = 0


SCENARIO_RULES: Mapping[str, ScenarioRules] = MappingProxyType(
    {
        "SingleStream": ScenarioRules(
            min_duration_ms=600_000,
            min_query_count=100,
            target_latency_percentile=90.0,
            checker_min_query_count=1024,
            early_stopping_min_queries=64,
        ),
        "MultiStream": ScenarioRules(
            min_duration_ms=600_000,
            min_query_count=662,
            target_latency_percentile=99.0,
            samples_per_query=8,
            checker_min_query_count=270_336,
            early_stopping_min_queries=662,
        ),
        "Server": ScenarioRules(
            min_duration_ms=600_000,
            min_query_count=100,
            target_latency_percentile=99.0,
            checker_min_query_count=270_336,
        ),
        "Offline": ScenarioRules(
            min_duration_ms=600_000,
            min_query_count=24_576,
            target_latency_percentile=90.0,
            samples_per_query=24_576,
            checker_min_query_count=1,
        ),
    }
)

OFFLINE_MIN_SAMPLES_PER_QUERY = 24_576
MIN_DURATION_MS = 600_000

# mlperf.conf placeholders a user.conf is expected to override.
DEFAULT_TARGETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "SingleStream": {"target_latency": 10},
        "MultiStream": {"target_latency": 80},
        "Server": {"target_qps": 1.0},
        "Offline": {"target_qps": 1.0},
    }
)


@dataclass(frozen=True)
class AccuracyMetric:
    """One metric the checker reads from accuracy.txt: `re.match(pattern, line)` >= threshold."""

    name: str
    pattern: str
    threshold: float


@dataclass(frozen=True)
class ModelRules:
    """Everything v3.1 says about one benchmark (submission model name)."""

    name: str  # official submission directory name, e.g. "resnet", "bert-99.9"
    loadgen_key: str  # model key in mlperf.conf, e.g. "resnet50", "bert"
    performance_sample_count: int  # checker minimum and mlperf.conf override (0 = QSL count)
    conf_performance_sample_count_override: int | None
    required_scenarios: Mapping[str, tuple[str, ...]]  # category -> scenarios
    compliance_tests: tuple[str, ...]
    accuracy: tuple[AccuracyMetric, ...]
    server_latency_ns: int | None = None
    test01_sampling_target: int = 4096
    sample_concatenate_permutation: tuple[str, ...] = ()  # scenarios using equal-issue mode
    scenario_target_latency_ms: Mapping[str, float] = field(default_factory=dict)

    def scenarios_for(self, category: str) -> tuple[str, ...]:
        """Required scenarios on a system of `category`; empty if the model is not allowed there."""
        return self.required_scenarios.get(category, ())


_ACC = "^accuracy=([\\d\\.]+).*"
_MAP = "^mAP=([\\d\\.]+).*"
_WER = "Word Error Rate\\:.*, accuracy=([0-9\\.]+)%"
_F1 = "^{[\\\"\\']exact_match[\\\"\\']\\:\\s*[\\d\\.]+,\\s*[\\\"\\']f1[\\\"\\']\\:\\s*([\\d\\.]+)}"
_AUC = "^AUC=([\\d\\.]+).*"
_DICE = "Accuracy\\:\\s*mean\\s*=\\s*([\\d\\.]+).*"
_ROUGE1 = ".*'rouge1':\\s([\\d.]+).*"
_ROUGE2 = ".*'rouge2':\\s([\\d.]+).*"
_ROUGEL = ".*'rougeL':\\s([\\d.]+).*"
_GEN_LEN = ".*'gen_len':\\s([\\d.]+).*"

_VISION = {
    "datacenter": ("Server", "Offline"),
    "edge": ("SingleStream", "MultiStream", "Offline"),
}
_DC_EDGE_SS = {"datacenter": ("Server", "Offline"), "edge": ("SingleStream", "Offline")}
_DC_ONLY = {"datacenter": ("Server", "Offline")}


def _gptj(name: str, fraction: float) -> ModelRules:
    return ModelRules(
        name=name,
        loadgen_key="gptj",
        performance_sample_count=13_368,
        conf_performance_sample_count_override=None,
        required_scenarios=_DC_EDGE_SS,
        compliance_tests=(),
        accuracy=(
            AccuracyMetric("ROUGE1", _ROUGE1, round(42.9865 * fraction, 7)),
            AccuracyMetric("ROUGE2", _ROUGE2, round(20.1235 * fraction, 7)),
            AccuracyMetric("ROUGEL", _ROUGEL, round(29.9881 * fraction, 7)),
            AccuracyMetric("GEN_LEN", _GEN_LEN, round(4016878 * 0.9, 1)),
        ),
        server_latency_ns=20_000_000_000,
        sample_concatenate_permutation=("SingleStream",),
    )


MODELS: Mapping[str, ModelRules] = MappingProxyType(
    {
        "resnet": ModelRules(
            name="resnet",
            loadgen_key="resnet50",
            performance_sample_count=1024,
            conf_performance_sample_count_override=1024,
            required_scenarios=_VISION,
            compliance_tests=("TEST01", "TEST04", "TEST05"),
            accuracy=(AccuracyMetric("acc", _ACC, round(76.46 * 0.99, 6)),),
            server_latency_ns=15_000_000,
        ),
        "retinanet": ModelRules(
            name="retinanet",
            loadgen_key="retinanet",
            performance_sample_count=64,
            conf_performance_sample_count_override=64,
            required_scenarios=_VISION,
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("mAP", _MAP, round(37.55 * 0.99, 6)),),
            server_latency_ns=100_000_000,
            test01_sampling_target=256,
            scenario_target_latency_ms={"MultiStream": 528},
        ),
        "rnnt": ModelRules(
            name="rnnt",
            loadgen_key="rnnt",
            performance_sample_count=2513,
            conf_performance_sample_count_override=2513,
            required_scenarios=_DC_EDGE_SS,
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("WER", _WER, round((100 - 7.452) * 0.99, 6)),),
            server_latency_ns=1_000_000_000,
        ),
        "bert-99": ModelRules(
            name="bert-99",
            loadgen_key="bert",
            performance_sample_count=10_833,
            conf_performance_sample_count_override=10_833,
            required_scenarios=_DC_EDGE_SS,
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("F1", _F1, round(90.874 * 0.99, 6)),),
            server_latency_ns=130_000_000,
        ),
        "bert-99.9": ModelRules(
            name="bert-99.9",
            loadgen_key="bert",
            performance_sample_count=10_833,
            conf_performance_sample_count_override=10_833,
            required_scenarios=_DC_ONLY,
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("F1", _F1, round(90.874 * 0.999, 6)),),
            server_latency_ns=130_000_000,
        ),
        "dlrm-v2-99": ModelRules(
            name="dlrm-v2-99",
            loadgen_key="dlrm-v2",
            performance_sample_count=204_800,
            conf_performance_sample_count_override=204_800,
            required_scenarios=_DC_ONLY,
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("AUC", _AUC, round(80.31 * 0.99, 6)),),
            server_latency_ns=60_000_000,
        ),
        "dlrm-v2-99.9": ModelRules(
            name="dlrm-v2-99.9",
            loadgen_key="dlrm-v2",
            performance_sample_count=204_800,
            conf_performance_sample_count_override=204_800,
            required_scenarios=_DC_ONLY,
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("AUC", _AUC, round(80.31 * 0.999, 6)),),
            server_latency_ns=60_000_000,
        ),
        "3d-unet-99": ModelRules(
            name="3d-unet-99",
            loadgen_key="3d-unet",
            performance_sample_count=43,
            conf_performance_sample_count_override=0,
            required_scenarios={"datacenter": ("Offline",), "edge": ("SingleStream", "Offline")},
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("DICE", _DICE, round(0.86170 * 0.99, 7)),),
            test01_sampling_target=64,
            sample_concatenate_permutation=("SingleStream", "MultiStream", "Server", "Offline"),
        ),
        "3d-unet-99.9": ModelRules(
            name="3d-unet-99.9",
            loadgen_key="3d-unet",
            performance_sample_count=43,
            conf_performance_sample_count_override=0,
            required_scenarios={"datacenter": ("Offline",), "edge": ("SingleStream", "Offline")},
            compliance_tests=("TEST01", "TEST05"),
            accuracy=(AccuracyMetric("DICE", _DICE, round(0.86170 * 0.999, 7)),),
            test01_sampling_target=64,
            sample_concatenate_permutation=("SingleStream", "MultiStream", "Server", "Offline"),
        ),
        "gptj-99": _gptj("gptj-99", 0.99),
        "gptj-99.9": _gptj("gptj-99.9", 0.999),
    }
)

# Fleet task names (what users type) -> official submission model names.
TASK_TO_MODEL: Mapping[str, str] = MappingProxyType(
    {
        "resnet50": "resnet",
        "retinanet": "retinanet",
        "rnnt": "rnnt",
        "bert-99": "bert-99",
        "bert-99.9": "bert-99.9",
        "dlrm-v2-99": "dlrm-v2-99",
        "dlrm-v2-99.9": "dlrm-v2-99.9",
        "3d-unet-99": "3d-unet-99",
        "3d-unet-99.9": "3d-unet-99.9",
        "gptj-99": "gptj-99",
        "gptj-99.9": "gptj-99.9",
    }
)

# Loadgen's result key per scenario in mlperf_log_detail.txt, and how the checker reports it.
RESULT_KEYS: Mapping[str, tuple[str, str, float]] = MappingProxyType(
    {
        # scenario: (detail-log key, unit, divisor)
        "Offline": ("result_samples_per_second", "Samples/s", 1.0),
        "Server": ("result_scheduled_samples_per_sec", "Queries/s", 1.0),
        "SingleStream": ("early_stopping_latency_ss", "Latency (ms)", 1e6),
        "MultiStream": ("early_stopping_latency_ms", "Latency (ms)", 1e6),
    }
)

# Which summary line verify_performance compares for each scenario.
SUMMARY_SCORE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "Offline": "Samples per second",
        "Server": "Completed samples per second",
        "SingleStream": "Early stopping 90th percentile estimate",
        "MultiStream": "Early stopping 99th percentile estimate",
    }
)


def model_for_task(task: str) -> ModelRules:
    """The rules of a fleet task; KeyError if the task is unknown (callers turn it into a message)."""
    return MODELS[TASK_TO_MODEL[task]]


def mlperf_conf_text() -> str:
    """The v3.1 mlperf.conf content, generated from the tables above."""
    lines = [
        "# MLPerf Inference v3.1 rules, as applied by mlperf-fleet (fleet/harness/rules/v3_1.py).",
        f"*.*.qsl_rng_seed = {SEEDS.qsl_rng_seed}",
        f"*.*.sample_index_rng_seed = {SEEDS.sample_index_rng_seed}",
        f"*.*.schedule_rng_seed = {SEEDS.schedule_rng_seed}",
        f"*.*.test05_qsl_rng_seed = {TEST05_SEEDS.qsl_rng_seed}",
        f"*.*.test05_sample_index_rng_seed = {TEST05_SEEDS.sample_index_rng_seed}",
        f"*.*.test05_schedule_rng_seed = {TEST05_SEEDS.schedule_rng_seed}",
        "",
    ]
    seen: set[str] = set()
    for rules in MODELS.values():
        if rules.loadgen_key in seen:
            continue
        seen.add(rules.loadgen_key)
        if rules.conf_performance_sample_count_override is not None:
            lines.append(
                f"{rules.loadgen_key}.*.performance_sample_count_override = "
                f"{rules.conf_performance_sample_count_override}"
            )
        for scen in rules.sample_concatenate_permutation:
            key = "*" if len(rules.sample_concatenate_permutation) == len(SCENARIOS) else scen
            line = f"{rules.loadgen_key}.{key}.sample_concatenate_permutation = 1"
            if line not in lines:
                lines.append(line)
        for scen, latency in rules.scenario_target_latency_ms.items():
            lines.append(f"{rules.loadgen_key}.{scen}.target_latency = {latency:g}")
        if rules.server_latency_ns is not None:
            bound_ms = rules.server_latency_ns // 1_000_000
            lines.append(f"{rules.loadgen_key}.Server.target_latency = {bound_ms}")
    lines.append("")
    for scen, srules in SCENARIO_RULES.items():
        lines.append(f"*.{scen}.target_latency_percentile = {srules.target_latency_percentile:g}")
        lines.append(f"*.{scen}.min_duration = {srules.min_duration_ms}")
        if scen == "MultiStream":
            lines.append(f"*.{scen}.samples_per_query = {srules.samples_per_query}")
        if scen in ("MultiStream", "Offline"):
            lines.append(f"*.{scen}.min_query_count = {srules.min_query_count}")
        if scen == "Server":
            lines.append("*.Server.target_duration = 0")
    lines.append("")
    for scen, targets in DEFAULT_TARGETS.items():
        for key, value in targets.items():
            lines.append(f"*.{scen}.{key} = {value:g}")
    return "\n".join(lines) + "\n"


# --- Run profiles --------------------------------------------------------------------------
# A profile says how much of the round's durations and counts a run applies. Every other rule
# (seeds, latency bounds, percentiles, samples per query, audit settings) is the same in all
# profiles, and the run's user.conf records what a profile changed.


@dataclass(frozen=True)
class Profile:
    """How a run scales the round's durations and counts, and how the harness sizes a run."""

    name: str
    # None: the round's min_duration (600 s); else this many ms for every scenario.
    min_duration_ms: int | None
    # scenario -> min_query_count replacing mlperf.conf's (missing: the round's value).
    min_query_count: Mapping[str, int]
    # Use min(rules performance_sample_count, dataset size) instead of refusing a small dataset.
    cap_performance_sample_count: bool
    # Seconds spent measuring the backend (per batch size tried) before a run.
    calibration_s: float
    # offline_expected_qps = measured samples/s x this (LoadGen adds 10%; more samples is
    # only a longer run, fewer ends INVALID under min_duration).
    offline_qps_margin: float
    # SingleStream/MultiStream expected latency = measured x this (<1: LoadGen pre-generates
    # more queries than needed instead of running out, which is an error).
    latency_margin: float
    # Default Server target_qps = measured throughput x this (tuning overrides it).
    server_utilization: float
    # A run's query count is cut so that it takes about this long at the planned pace (None:
    # never cut). Smoke runs stay short on a slow node; a count cut below LoadGen's
    # early-stopping minimum makes the result INVALID, and the run says so.
    max_run_s: float | None = None
    # The most one batch size's calibration may take: ragged samples (3D-UNet cases, RNN-T
    # utterances) are measured in a whole pass when it fits (None: always a whole pass).
    calibration_max_s: float | None = None
    # Run an INVALID mode again when what it measured explains it (planning.replan_after and
    # retries_for, the Server audits' retry share). Off for the tuner's trials: a trial is one
    # measurement of the target it names, and a retry at another would report that one as VALID.
    retry_invalid: bool = True


# LoadGen's early-stopping estimate needs this many queries, none over the bound, before it
# can claim the scenario's percentile: SingleStream p90 64, MultiStream p99 662 (the rule's
# minimums) and Server p99 459 (measured with LoadGen 6.0: 458 queries end INVALID).
EARLY_STOPPING_MIN_QUERIES: Mapping[str, int] = MappingProxyType(
    {"SingleStream": 64, "MultiStream": 662, "Server": 459}
)

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "submission": Profile(
            name="submission",
            min_duration_ms=None,
            min_query_count=MappingProxyType({}),
            cap_performance_sample_count=False,
            calibration_s=1.0,
            offline_qps_margin=1.1,
            latency_margin=0.5,
            server_utilization=0.5,
            calibration_max_s=60.0,
        ),
        "smoke": Profile(
            name="smoke",
            min_duration_ms=1000,
            min_query_count=MappingProxyType(
                {**EARLY_STOPPING_MIN_QUERIES, "Offline": 8}
            ),
            cap_performance_sample_count=True,
            calibration_s=0.3,
            offline_qps_margin=2.0,
            latency_margin=0.5,
            server_utilization=0.3,
            max_run_s=120.0,
            calibration_max_s=10.0,
        ),
    }
)

# --- Compliance audit settings and verification thresholds (compliance/nvidia/TESTxx) -------

AUDIT_MODE_PERFORMANCE_ONLY = 2  # the audit.config `mode` value


@dataclass(frozen=True)
class VerifyThresholds:
    """verify_performance.py of one test: relative threshold, relaxed one for short latencies."""

    threshold: float
    short_latency_threshold: float


# A reference SingleStream latency <= 200 us or MultiStream <= 1.6 ms uses the relaxed threshold.
SHORT_LATENCY_NS: Mapping[str, int] = MappingProxyType(
    {"SingleStream": 200_000, "MultiStream": 1_600_000}
)
VERIFY_THRESHOLDS: Mapping[str, VerifyThresholds] = MappingProxyType(
    {
        "TEST01": VerifyThresholds(0.10, 0.20),  # |test - ref| within the threshold
        "TEST04": VerifyThresholds(0.10, 0.20),  # test not faster than ref x (1 + threshold)
        "TEST05": VerifyThresholds(0.05, 0.20),  # test not slower than ref x (1 -/+ threshold)
    }
)
# TEST01 fallback when responses differ: |1 - baseline/compliance| x 100 must be <= this (percent).
TEST01_ACCURACY_DELTA_PCT = 1.0
TEST01_ACCURACY_DELTA_PCT_999 = 0.1


@dataclass(frozen=True)
class ServerAuditTargets:
    """A Server audit's target QPS as shares of its performance run's target: first try, retry."""

    first: float
    retry: float


# A Server audit repeats its performance run under another load: TEST01 also logs a sample of
# responses, TEST05 draws a new schedule from other seeds. At the very target of a performance
# run that passed with a thin margin, the audit ends INVALID (measured: resnet50 VALID at 372
# QPS with p99 11.2 of 15 ms, then TEST01 at 372 QPS p99 16.1 ms). Verification compares
# completed samples per second, so an audit may run lower, by as much as its threshold
# allows: TEST01 within +-10 %, TEST04 not above +10 %, TEST05 not below -5 %. Each audit runs
# first at `first` x the performance run's target and, if INVALID, once more at `retry`, both
# inside what its verification accepts (tests/harness check the margin against the thresholds).
SERVER_AUDIT_TARGETS: Mapping[str, ServerAuditTargets] = MappingProxyType(
    {
        "TEST01": ServerAuditTargets(first=0.95, retry=0.92),
        "TEST04": ServerAuditTargets(first=0.97, retry=0.93),
        "TEST05": ServerAuditTargets(first=1.0, retry=0.97),
    }
)
