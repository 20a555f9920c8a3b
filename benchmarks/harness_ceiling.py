"""The harness's own ceiling: the null backend against a bare LoadGen loop, in one run.

    .venv/bin/python benchmarks/harness_ceiling.py [--seconds 2]

The null backend answers at once, so what is measured is the harness itself (queues,
batching, response building, QuerySamplesComplete) against a bare fast-SUT that completes
every query in LoadGen's issue callback with one fixed 4-byte response. Both read the same
mlperf.conf/user.conf settings. The harness picks its batch sizes itself.

- Offline: samples/s of one big query (same sample count on both sides).
- Server: the highest target QPS that still ends VALID (15 ms bound, p99), found by
  doubling then bisecting, each side on its own (a trial that ends INVALID gets one retry,
  so one scheduling hiccup on a shared machine does not end the climb); and the completed
  samples/s when LoadGen asks for far more than either side can do (plumbing capacity).
Target: the harness reaches at least half of the bare ceiling. Prints; never asserts.
"""

from __future__ import annotations

import argparse
import array
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet.harness.detail_log import read_detail  # noqa: E402
from fleet.harness.loadgen_runner import NO_AUDIT_FILE, build_settings  # noqa: E402
from fleet.harness.rules import v3_1 as rules  # noqa: E402
from fleet.harness.runner import Harness  # noqa: E402
from fleet.harness.spec import RunSpec, Tuning  # noqa: E402
from fleet.harness.synthetic import synthesize  # noqa: E402

SAMPLES = 256


def bare_run(scenario: str, user_conf: str, out: Path, total: int) -> dict:
    """A bare LoadGen run: the SUT completes each query inside the issue callback."""
    import mlperf_loadgen as lg

    payload = array.array("B", bytes(4))
    addr, size = payload.buffer_info()[0], 4
    response = lg.QuerySampleResponse

    def issue(ids, indices):
        lg.QuerySamplesComplete([response(i, addr, size) for i in ids])

    texts = [("mlperf.conf", rules.mlperf_conf_text()), ("user.conf", user_conf)]
    settings, _ = build_settings(lg, scenario, "performance", texts, "resnet50")
    sut = lg.ConstructFastSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(total, total, lambda s: None, lambda s: None)
    out.mkdir(parents=True, exist_ok=True)
    log = lg.LogSettings()
    log.log_output.outdir = str(out)
    log.log_output.copy_summary_to_stdout = False
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log, str(out / NO_AUDIT_FILE))
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroyFastSUT(sut)
    return read_detail(out / "mlperf_log_detail.txt").values


def user_conf(scenario: str, seconds: float, qps: float) -> str:
    return (f"resnet50.{scenario}.min_duration = {int(seconds * 1000)}\n"
            f"resnet50.{scenario}.min_query_count = {rules.PROFILES['smoke'].min_query_count[scenario]}\n"
            f"resnet50.{scenario}.performance_sample_count_override = {SAMPLES}\n"
            f"resnet50.{scenario}.target_qps = {qps}\n")


def max_valid_qps(run, start: float, steps: int = 3) -> float:
    """Double from `start` while VALID, then bisect between the last VALID and the first INVALID."""

    def trial(q: float) -> bool:
        return run(q) or run(q)

    lo, hi, q = 0.0, None, start
    while hi is None and q < 5e6:
        if trial(q):
            lo, q = q, q * 2
        else:
            hi = q
    hi = hi or q
    for _ in range(steps):
        mid = (lo + hi) / 2
        if trial(mid):
            lo = mid
        else:
            hi = mid
    return lo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="min_duration of each run")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fleet-ceiling-") as tmp:
        tmp_path = Path(tmp)
        assets = tmp_path / "assets"
        synthesize("resnet50", assets, SAMPLES, seed=0, variant="small")
        spec = RunSpec(task="resnet50", scenarios=["Offline", "Server"], modes=["performance"],
                       backend="null", dataset=str(assets / "imagenet"), profile="smoke")
        profile = replace(rules.PROFILES["smoke"], name="ceiling", min_duration_ms=int(args.seconds * 1000))
        harness = Harness(spec, tmp_path / "out", cache_root=tmp_path / "cache", profile=profile,
                          echo=lambda line: None)
        counter = iter(range(10_000))

        # Offline: the bare loop sets the pace; both sides then issue the same sample count.
        probe = bare_run("Offline", user_conf("Offline", args.seconds, 200_000), tmp_path / "probe", SAMPLES)
        qps = float(probe["result_samples_per_second"])
        bare_off = bare_run("Offline", user_conf("Offline", args.seconds, qps), tmp_path / "bare-off",
                            SAMPLES)
        harness.retune(Tuning(offline_expected_qps=qps))
        h_off = harness.run_one("Offline", "performance")

        def bare_server_values(q: float) -> dict:
            return bare_run("Server", user_conf("Server", args.seconds, q),
                            tmp_path / f"bare-srv-{next(counter)}", SAMPLES)

        def bare_server(q: float) -> bool:
            return bare_server_values(q).get("result_validity") == "VALID"

        server_batch: list[int] = []

        def harness_server_entry(q: float) -> dict:
            harness.retune(Tuning(server_target_qps=q))
            entry = harness.run_one("Server", "performance")
            server_batch.append(entry["batch_size"])
            return entry

        def harness_server(q: float) -> bool:
            return harness_server_entry(q)["result_validity"] == "VALID"

        t0 = time.perf_counter()
        bare_srv = max_valid_qps(bare_server, 10_000)
        h_srv = max_valid_qps(harness_server, 10_000)
        search_s = time.perf_counter() - t0
        overload = 4 * max(bare_srv, h_srv, 10_000)
        bare_cap = float(bare_server_values(overload)["result_completed_samples_per_sec"])
        h_entry = harness_server_entry(overload)
        detail = read_detail(harness.out / h_entry["dir"] / "mlperf_log_detail.txt")
        h_cap = float(detail.get("result_completed_samples_per_sec"))
        harness.backend.close()

    bare_off_sps = float(bare_off["result_samples_per_second"])
    rows = [
        ("Offline samples/s", bare_off_sps, h_off["result"], f"harness batch {h_off['batch_size']}"),
        ("Server max VALID QPS", bare_srv, h_srv, f"harness max batch {server_batch[-1]}"),
        ("Server capacity S/s", bare_cap, h_cap, f"completed samples/s at {overload:,.0f} QPS asked"),
    ]
    print()
    print(f"{'':<22} {'bare LoadGen':>14} {'harness (null)':>15} {'ratio':>7}   note")
    print("-" * 78)
    for name, bare, ours, note in rows:
        print(f"{name:<22} {bare:>14,.0f} {ours:>15,.0f} {ours / bare:>7.3f}   {note}")
    print(f"\n(Server search took {search_s:.0f} s; target: ratio >= 0.5; 1-min load average "
          f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
