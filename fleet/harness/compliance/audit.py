"""The audit.config of each compliance test, generated from the rules table.

The harness applies these settings itself (loadgen_conf.resolve/apply, after mlperf.conf and
user.conf, exactly where LoadGen would apply a cwd audit.config) and writes the text into the
run directory. It never relies on an audit.config in the working directory: LoadGen is given
a path that does not exist, so a stray file there cannot change a normal run.

- TEST01: a performance run that also logs a seeded random subset of responses
  (accuracy_log_sampling_target per model), to compare with the accuracy run.
- TEST04: the same sample (index 3) issued again and again; a SUT that caches results gets
  much faster than its performance run and fails.
- TEST05: the round's alternative seeds; a SUT tuned to the official seeds fails.
"""

from __future__ import annotations

from fleet.harness.rules import v3_1 as rules

_HEADER = ("# audit.config applied by fleet.harness (MLPerf Inference {round} {test}).\n"
           "# Format 'model.scenario.key = value'; mode 2 = PerformanceOnly.\n")


def audit_config_text(test: str, rules_model: str) -> str:
    model = rules.MODELS[rules_model]
    head = _HEADER.format(round=rules.ROUND, test=test)
    mode = rules.AUDIT_MODE_PERFORMANCE_ONLY
    if test == "TEST01":
        return head + (
            f"*.*.mode = {mode}\n"
            f"*.*.accuracy_log_rng_seed = {rules.TEST01_ACCURACY_LOG_RNG_SEED}\n"
            f"*.*.accuracy_log_sampling_target = {model.test01_sampling_target}\n"
        )
    if test == "TEST04":
        lines = []
        for scenario in ("MultiStream", "Offline", "SingleStream", "Server"):
            lines += [
                f"*.{scenario}.mode = {mode}",
                f"*.{scenario}.performance_issue_unique = 0",
                f"*.{scenario}.performance_issue_same = 1",
                f"*.{scenario}.performance_issue_same_index = {rules.TEST04_ISSUE_SAME_INDEX}",
            ]
        return head + "\n".join(lines) + "\n"
    if test == "TEST05":
        seeds = rules.TEST05_SEEDS
        return head + (
            f"*.*.mode = {mode}\n"
            "*.*.test05 = 1\n"
            f"*.*.test05_qsl_rng_seed = {seeds.qsl_rng_seed}\n"
            f"*.*.test05_sample_index_rng_seed = {seeds.sample_index_rng_seed}\n"
            f"*.*.test05_schedule_rng_seed = {seeds.schedule_rng_seed}\n"
        )
    raise ValueError(f"not a compliance test: {test}")
