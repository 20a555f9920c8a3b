"""`python -m fleet.harness tune` on this machine (no SSH): real LoadGen, real onnxruntime.

The small synthetic ResNet50 keeps trials short. Performance numbers are never asserted:
only what tuning must guarantee whatever the machine's speed (the choice is the best
measured, targets come from the calibration run, every trial is logged, the Server target
is bracketed by a VALID and an INVALID trial).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checks import assert_confirmed
from paced import RetinaSleepBackend

from fleet.harness import hostfacts, manifest
from fleet.harness.nodeinfo import usable_cpus
from fleet.harness.rules import v3_1 as rules
from fleet.harness.runner import run_spec
from fleet.harness.spec import RunSpec, Tuning
from fleet.harness.tuning.digest import facts_digest
from fleet.harness.tuning.options import TuneOptions
from fleet.harness.tuning.tuner import lower_target_cannot_help, tune_spec

HARNESS = [sys.executable, "-m", "fleet.harness"]
MIN_GAIN = 0.02  # search_knobs' default


def _assets_args(assets: Path) -> list[str]:
    return ["--model", str(assets / "resnet50_v1.onnx"), "--dataset", str(assets / "imagenet")]


@pytest.fixture(scope="module")
def tuned(small_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("tune-out")
    proc = subprocess.run(
        [*HARNESS, "tune", "--task", "resnet50", "--scenario", "Offline,SingleStream,MultiStream",
         *_assets_args(small_assets), "--out", str(out), "--budget-s", "33", "--stable-s", "1.5"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    return {"proc": proc, "out": out, "data": json.loads((out / "tuning.json").read_text())}


def test_tune_records_every_trial_and_chooses_the_best_measured(tuned: dict[str, Any]) -> None:
    proc, out, data = tuned["proc"], tuned["out"], tuned["data"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert data["tuning_version"] == 1
    assert data["facts_digest"] == facts_digest(hostfacts.host_facts(), manifest.versions())
    for scenario in ("Offline", "SingleStream", "MultiStream"):
        rec = data["tasks"]["resnet50"][scenario]
        assert rec["status"] == "ok", rec["error"]
        trials = rec["trials"]
        assert rec["trial_count"] == len(trials) >= 2
        for t in trials:
            assert {"settings", "result", "validity", "ok", "kind", "dir"} <= set(t)
            assert t["settings"].get("threads", 1) <= usable_cpus()
            if t["ok"]:
                assert (out / t["dir"] / "mlperf_log_detail.txt").is_file()
                assert (out / t["dir"] / "user.conf").is_file()
        # Coordinate descent keeps an incumbent unless beaten by MIN_GAIN: nothing measured
        # scores clearly better than the choice.
        knob = [t for t in trials if t["kind"] == "knob" and t["ok"] and not t["superseded_by"]]
        chosen = next(t for t in trials if t["n"] == rec["knob_search"]["best_trial"])
        assert chosen["settings"] == rec["settings"]

        key = {"Offline": "result", "SingleStream": "p90_ms", "MultiStream": "p99_ms"}[scenario]
        scores = {t["n"]: t[key] if key == "result" else 1e3 / t[key] for t in [*knob, chosen]}
        assert all(scores[t["n"]] <= scores[chosen["n"]] * (1 + MIN_GAIN) + 1e-9 for t in knob)
        log = (out / "resnet50" / scenario / "tuning" / "tuning.log").read_text().splitlines()
        assert len([ln for ln in log if ln.startswith("trial ")]) == len(trials)
        assert log[-1].startswith(f"tuned resnet50 {scenario}: ")
    offline = data["tasks"]["resnet50"]["Offline"]
    calib = next(t for t in offline["trials"] if t["n"] == offline["measured"]["calibration_trial"])
    assert calib["kind"] == "target" and calib["min_duration_s"] == 1.5
    factor = max(rules.PROFILES["smoke"].offline_qps_margin, 1.05)
    assert offline["tuning"]["offline_expected_qps"] == pytest.approx(calib["result"] * factor, abs=1e-3)
    assert offline["tuning"]["batch_size"] == offline["settings"]["batch_size"]
    for scenario in ("SingleStream", "MultiStream"):
        rec = data["tasks"]["resnet50"][scenario]
        assert rec["tuning"][f"{scenario.lower()}_expected_latency_ms"] == pytest.approx(
            rec["measured"]["mean_latency_ms"] * rules.PROFILES["smoke"].latency_margin, abs=1e-4)
    entries = {(r["scenario"], r["mode"]): r for r in json.loads((out / "manifest.json").read_text())["runs"]}
    assert entries[("Offline", "tune")]["outcome"] == "ok"
    assert entries[("Offline", "tune")]["result"] == offline["tuning"]["offline_expected_qps"]
    assert entries[("SingleStream", "tune")]["dir"] == "resnet50/SingleStream/tuning"


def _tuned_spec(assets: Path, rec: dict[str, Any], digest: str) -> RunSpec:
    values = rec["tuning"]
    tuning = Tuning(**{**values, "tuned_for": digest, "tuned_fields": sorted(values)})
    return RunSpec(task="resnet50", scenarios=["Offline"], modes=["performance"], profile="smoke",
                   model=str(assets / "resnet50_v1.onnx"), dataset=str(assets / "imagenet"), tuning=tuning)


def test_tuned_values_go_into_user_conf_unless_the_machine_changed(tuned, small_assets, tmp_path) -> None:
    rec = tuned["data"]["tasks"]["resnet50"]["Offline"]
    want = rec["tuning"]["offline_expected_qps"]
    lines: list[str] = []
    spec = _tuned_spec(small_assets, rec, tuned["data"]["facts_digest"])
    [entry] = run_spec(spec, tmp_path / "same", echo=lines.append)
    assert entry["outcome"] == "ok", entry["error"]
    user = (tmp_path / "same" / entry["dir"] / "user.conf").read_text()
    got = float(re.search(r"^resnet50\.Offline\.target_qps = (\S+)$", user, re.M).group(1))
    if entry["attempts"]:  # an INVALID first try was retried with its own rate: it had the tuned value
        got = entry["attempts"][0]["target_qps"]
    assert got == pytest.approx(want)
    settings = rec["settings"]
    assert (entry["threads"], entry["batch_size"]) == (settings["threads"], settings["batch_size"])
    assert not [ln for ln in lines if ln.startswith("warning:")]

    lines.clear()
    moved = _tuned_spec(small_assets, rec, "0" * 16)
    [entry] = run_spec(moved, tmp_path / "moved", echo=lines.append)
    user = (tmp_path / "moved" / entry["dir"] / "user.conf").read_text()
    got = float(re.search(r"^resnet50\.Offline\.target_qps = (\S+)$", user, re.M).group(1))
    assert got != pytest.approx(want)  # measured by the harness, not the stale value
    assert entry["threads"] == usable_cpus()  # the untuned default again
    [warning] = [ln for ln in lines if ln.startswith("warning:")]
    assert "host facts changed" in warning and "offline_expected_qps" in warning


def test_server_search_ends_on_a_valid_target_below_an_invalid_one(retinanet_assets, tmp_path) -> None:
    model, dataset = retinanet_assets
    spec = RunSpec(task="retinanet", scenarios=["Server"], model=str(model), dataset=str(dataset),
                   tuning=Tuning(threads=1, graph_optimization="all"))
    records = tune_spec(spec, tmp_path, TuneOptions(budget_s=45, safety_margin=0.1), echo=lambda line: None,
                        wrap_backend=RetinaSleepBackend)
    rec = records["Server"]
    assert rec["status"] == "ok", rec["error"]
    search = rec["server_search"]
    best, ceiling = search["best"], search["ceiling"]
    assert best["valid"] and ceiling is not None and not ceiling["valid"]
    by_n = {t["n"]: t for t in rec["trials"]}
    server = [by_n[n] for n in search["trial_numbers"]]
    assert all(t["kind"] == "server" and t["scenario"] == "Server" for t in server)
    # JSON round-trips floats exactly: the search's targets are the trials' own numbers.
    [best_trial] = [t for t in server if t["conf"]["target_qps"] == best["target_qps"]]
    assert best_trial["validity"] == "VALID" and best_trial["p99_ms"] <= search["latency_bound_ms"]
    # The next higher target tried fails LoadGen's verdict or the bound.
    above = [t for t in server if t["conf"]["target_qps"] > best["target_qps"]]
    step = min(above, key=lambda t: t["conf"]["target_qps"])
    assert step["conf"]["target_qps"] == ceiling["target_qps"]
    assert step["validity"] != "VALID" or step["p99_ms"] > search["latency_bound_ms"]
    assert_confirmed(rec, best["target_qps"], 0.1)
    assert rec["tuning"]["server_max_batch"] == rec["settings"]["batch_size"]
    # The knobs were measured with LoadGen too (Offline-mode throughput trials).
    assert any(t["kind"] == "knob" and t["scenario"] == "Offline" for t in rec["trials"])


def test_server_search_gives_up_only_when_latency_is_the_nodes_own() -> None:
    # 15 ms bound, Offline rate 300/s: at 60 QPS (20 % load) a 10 ms median is not queueing.
    assert lower_target_cannot_help(60, 300, 10.0, 15.0)
    assert not lower_target_cannot_help(60, 300, 5.0, 15.0)  # room left under the bound
    assert not lower_target_cannot_help(150, 300, 10.0, 15.0)  # 50 % load: queueing may explain it
    assert not lower_target_cannot_help(60, 300, None, 15.0)


def test_a_scenario_that_cannot_be_tuned_is_recorded_and_exits_1(small_assets, tmp_path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    out = tmp_path / "out"
    proc = subprocess.run(
        [*HARNESS, "tune", "--task", "resnet50", "--scenario", "Offline", "--model", str(bad),
         "--dataset", str(small_assets / "imagenet"), "--out", str(out), "--budget-s", "5"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1
    rec = json.loads((out / "tuning.json").read_text())["tasks"]["resnet50"]["Offline"]
    assert rec["status"] == "failed" and "cannot load" in rec["error"]
    [entry] = json.loads((out / "manifest.json").read_text())["runs"]
    assert (entry["mode"], entry["outcome"]) == ("tune", "failed")
    assert "FAILED" in proc.stdout.splitlines()[-1]


def test_tune_refuses_modes_in_one_line(small_assets, tmp_path) -> None:
    proc = subprocess.run([*HARNESS, "tune", "--task", "resnet50", "--scenario", "Offline",
                           "--mode", "accuracy", *_assets_args(small_assets), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "fleet.harness: error: tune always measures performance: drop --mode"
