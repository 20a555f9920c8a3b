"""Pure pieces: LoadGen conf resolution, settings, manifest upserts, digest cache, robustness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness_helpers import make_harness

from fleet.harness import digest, loadgen_conf, manifest
from fleet.harness.errors import HarnessError
from fleet.harness.loadgen_runner import build_settings
from fleet.harness.rules import v3_1 as rules

pytestmark = pytest.mark.timeout(300)


def test_resolve_prefers_specific_keys_and_later_files():
    mlperf = "*.*.min_duration = 600000\nresnet50.*.min_duration = 500\n*.Offline.min_duration = 7\n"
    user = "resnet50.Offline.target_qps = 12.5  # measured\nbert.Offline.target_qps = 99\n"
    values = loadgen_conf.resolve([("mlperf.conf", mlperf), ("user.conf", user)], "resnet50", "Offline")
    assert values == {"min_duration": "500", "target_qps": "12.5"}
    later = loadgen_conf.resolve([("a", mlperf), ("b", "*.*.min_duration = 1000\n")], "resnet50", "Offline")
    assert later["min_duration"] == "1000"


def test_bad_conf_line_is_a_harness_error():
    with pytest.raises(HarnessError, match=r"user\.conf:2"):
        loadgen_conf.parse("resnet50.Offline.target_qps = 1\nnonsense\n", "user.conf")


def test_settings_from_rules_carry_exact_seeds_and_bounds():
    import mlperf_loadgen as lg

    texts = [("mlperf.conf", rules.mlperf_conf_text()),
             ("user.conf", "resnet50.SingleStream.target_latency = 0.25\n")]
    ss, _ = build_settings(lg, "SingleStream", "performance", texts, "resnet50")
    assert ss.qsl_rng_seed == rules.SEEDS.qsl_rng_seed  # > 2**53: parsed as int, not float
    assert ss.schedule_rng_seed == rules.SEEDS.schedule_rng_seed
    assert ss.test05_sample_index_rng_seed == rules.TEST05_SEEDS.sample_index_rng_seed
    assert ss.single_stream_expected_latency_ns == 250_000
    assert ss.min_duration_ms == rules.MIN_DURATION_MS
    assert ss.performance_sample_count_override == 1024
    srv, _ = build_settings(lg, "Server", "accuracy", texts, "resnet50")
    assert srv.server_target_latency_ns == rules.MODELS["resnet"].server_latency_ns
    assert srv.server_target_latency_percentile == pytest.approx(0.99)
    assert srv.mode == lg.TestMode.AccuracyOnly
    ms, _ = build_settings(lg, "MultiStream", "performance", texts, "resnet50")
    assert ms.multi_stream_samples_per_query == 8 and ms.min_query_count == 662
    off, _ = build_settings(lg, "Offline", "performance", texts, "resnet50")
    assert off.min_query_count == rules.OFFLINE_MIN_SAMPLES_PER_QUERY


def test_manifest_rerun_replaces_its_entry(tmp_path):
    host, vers = {"hostname": "h"}, {"python": "3"}
    base = {"task": "resnet50", "scenario": "Offline", "mode": "performance", "outcome": "ok"}
    manifest.record_run(tmp_path, {**base, "result": 1.0}, host, vers)
    manifest.record_run(tmp_path, {**base, "mode": "accuracy", "result": None}, host, vers)
    manifest.record_run(tmp_path, {**base, "scenario": "SingleStream"}, host, vers)
    manifest.record_run(tmp_path, {**base, "result": 2.0}, host, vers)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert [(r["scenario"], r["mode"]) for r in data["runs"]] == [
        ("SingleStream", "performance"), ("Offline", "performance"), ("Offline", "accuracy")]
    assert data["runs"][1]["result"] == 2.0
    assert not list(tmp_path.glob(".manifest.json.*.tmp"))


def test_digest_cache_hashes_each_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_DIGEST_CACHE", str(tmp_path / "digests.json"))
    big = tmp_path / "model.onnx"
    big.write_bytes(b"x" * 100_000)
    calls = []
    real = digest.hash_file
    monkeypatch.setattr(digest, "hash_file", lambda p: calls.append(p) or real(p))
    first = digest.file_sha256(big)
    assert digest.file_sha256(big) == first and len(calls) == 1
    big.write_bytes(b"y" * 100_001)
    assert digest.file_sha256(big) != first and len(calls) == 2
    assert str(big.resolve()) in json.loads((tmp_path / "digests.json").read_text())


class _Exploding:
    """Wraps a backend; every third batch raises, as a flaky accelerator would."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.threads, self.execution_provider = inner.name, inner.threads, inner.execution_provider
        self.needs_feed = True

    def run(self, feed, n):
        self.calls += 1
        if self.calls % 3 == 0:
            raise RuntimeError("device lost")
        return self.inner.run(feed, n)

    def pinned(self, call):
        return self.inner.pinned(call)

    def versions(self):
        return self.inner.versions()

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("scenario", ["Offline", "SingleStream", "Server"])
def test_inference_errors_complete_every_query_and_fail_the_run(small_assets, tmp_path, scenario):
    from fleet.harness.spec import Tuning

    tuning = Tuning(threads=1, batch_size=4, offline_expected_qps=100, server_target_qps=200,
                    singlestream_expected_latency_ms=1.0)
    harness = make_harness(small_assets, tmp_path, [scenario], ["performance"], tuning=tuning,
                           wrap_backend=lambda inner, ctx: _Exploding(inner))
    entry = harness.run_one(scenario, "performance")  # returns: LoadGen did not hang
    harness.backend.close()
    assert entry["outcome"] == "failed"
    assert "inference: RuntimeError: device lost" in entry["error"]
    summary = (tmp_path / entry["dir"] / "mlperf_log_summary.txt").read_text()
    assert "Result is" in summary


def test_qsl_feed_gathers_rows_of_loaded_samples(small_assets):
    from fleet.harness.qsl import RunErrors, SampleStore
    from fleet.harness.tasks.resnet50 import ResNet50

    task = ResNet50()
    task.open(small_assets.dataset, Path(small_assets.root) / "qsl-cache")
    store = SampleStore(task, RunErrors())
    store.load([5, 2, 9])
    store.load([2, 11])  # already-loaded samples are kept
    feed = store.feed(np.array([11, 5, 5]))["input_tensor:0"]
    assert feed.shape == (3, 3, 224, 224) and feed.dtype == np.float32
    assert np.array_equal(feed[0], task.load_sample(11)["input_tensor:0"])
    assert np.array_equal(feed[2], task.load_sample(5)["input_tensor:0"])
    store.unload([5, 2, 9, 11])
    assert store.arrays == {}
    with pytest.raises(RuntimeError, match="not loaded"):
        store.feed(np.array([5]))


def test_onnxruntime_refuses_a_precision_its_model_was_not_exported_in(small_assets):
    from fleet.harness.backends import BackendOptions, open_backend
    from fleet.harness.tasks import get_task

    with pytest.raises(HarnessError, match="onnxruntime runs the precision its model file was exported in"):
        open_backend("onnxruntime", small_assets.model, get_task("resnet50"),
                     BackendOptions(precision="bf16"))
