"""The pytorch backend's contract, on a one-program model: numpy in and out, its own thread
(concurrent callers, close drains, calls after close refused), Server's pool, the tuner's space."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fleet.harness.backends import BackendOptions, scenario_options
from fleet.harness.errors import HarnessError
from fleet.harness.nodeinfo import server_intra_op_threads
from fleet.harness.spec import Tuning
from fleet.harness.tuning.digest import digest_fields
from fleet.harness.tuning.space import knob_space

torch = pytest.importorskip("torch")

WEIGHT = [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]
BIAS = [0.5, -0.5]


class _AffineTask:
    """A one-program task (as DLRM-v2 will be): run() feeds numpy in and gets numpy out."""

    name = "affine"
    model_backends = ("pytorch",)
    outputs = (type("Spec", (), {"name": "y"})(),)

    def memory_need(self, model: Path, precision: str) -> None:
        return None  # fits any node, as Task's default says

    def torch_model(self, path: Path) -> Any:
        class Affine(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(3, 2)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.linear(x)

        module = Affine()
        module.load_state_dict(torch.load(str(path), weights_only=True))
        return module


def _expected(x: np.ndarray) -> np.ndarray:
    return x @ np.array(WEIGHT, np.float32).T + np.array(BIAS, np.float32)


@pytest.fixture()
def backend(tmp_path: Path):
    from fleet.harness.backends.pytorch_backend import PyTorchBackend

    weights = {"linear.weight": torch.tensor(WEIGHT), "linear.bias": torch.tensor(BIAS)}
    torch.save(weights, tmp_path / "affine.pt")
    opened = PyTorchBackend(tmp_path / "affine.pt", _AffineTask(), BackendOptions(threads=1))
    yield opened
    opened.close()


def test_a_one_program_model_runs_numpy_in_numpy_out(backend) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = backend.run({"x": x}, 4)
    assert set(out) == {"y"} and isinstance(out["y"], np.ndarray) and out["y"].dtype == np.float32
    np.testing.assert_allclose(out["y"], _expected(x), rtol=1e-6)


def test_concurrent_callers_each_get_their_own_answer_on_one_thread(backend) -> None:
    """The SUT's threads (LoadGen's issue thread, the batcher, the calibrator) may ask at once."""
    answers: dict[int, list[bool]] = {}
    where: set[int] = set()

    def ask(caller: int) -> None:
        rows = []
        for step in range(25):
            x = np.full((2, 3), caller * 100 + step, dtype=np.float32)
            out = backend.run({"x": x}, 2)["y"]
            rows.append(np.allclose(out, _expected(x), rtol=1e-6))
            where.add(backend.pinned(threading.get_ident)())
        answers[caller] = rows

    callers = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for t in callers:
        t.start()
    for t in callers:
        t.join(timeout=60)
    assert sorted(answers) == list(range(8)) and all(all(rows) for rows in answers.values())
    assert len(where) == 1 and threading.get_ident() not in where


def test_close_finishes_what_was_handed_over_and_refuses_what_comes_after(backend) -> None:
    x = np.ones((1, 3), dtype=np.float32)
    results: dict[str, Any] = {}
    running, release = threading.Event(), threading.Event()

    def hold() -> str:
        running.set()
        release.wait(10)
        return "held"

    holder = threading.Thread(target=lambda: results.update(held=backend.pinned(hold)()))
    holder.start()
    assert running.wait(10)  # the backend's thread is busy: the next call waits in its queue
    queued = threading.Thread(target=lambda: results.update(queued=backend.run({"x": x}, 1)["y"]))
    queued.start()
    deadline = time.monotonic() + 10
    while backend._own._jobs.qsize() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    closer = threading.Thread(target=backend.close)
    closer.start()
    time.sleep(0.1)
    assert closer.is_alive()  # close() waits for the calls handed over before it
    release.set()
    for t in (closer, holder, queued):
        t.join(timeout=10)
    assert results["held"] == "held" and np.allclose(results["queued"], _expected(x))  # model still there
    started = time.monotonic()
    with pytest.raises(HarnessError, match="the pytorch backend was closed"):
        backend.run({"x": x}, 1)
    with pytest.raises(HarnessError, match="was closed"):
        backend.pinned(lambda: 1)()
    assert time.monotonic() - started < 1  # refused, not waiting for a thread that has ended
    backend.close()  # a second close is harmless


def test_server_leaves_a_cpu_to_loadgen_on_the_cpu_pool_backends() -> None:
    untuned = BackendOptions()
    for name in ("onnxruntime", "pytorch"):
        assert scenario_options(name, untuned, "Server").threads == server_intra_op_threads()
        assert scenario_options(name, untuned, "Offline") == untuned
        assert scenario_options(name, BackendOptions(threads=2), "Server").threads == 2  # a pin is kept
    assert scenario_options("pytorch", BackendOptions(execution_provider="cuda"), "Server").threads is None
    assert scenario_options("null", untuned, "Server") == untuned


def test_the_tuner_searches_pytorch_thread_counts_and_onnxruntime_knobs_only_for_onnxruntime() -> None:
    space = knob_space("Offline", "pytorch", Tuning(), usable_cpus=4, max_batch=1, start_batch=None,
                       available_providers=[])
    assert space.values == {"threads": [1, 2, 4]} and space.start["threads"] == 4
    server = knob_space("Server", "pytorch", Tuning(), usable_cpus=4, max_batch=1, start_batch=None,
                        available_providers=[], server_threads=3)
    assert server.values == {"threads": [1, 2, 3]} and server.start["threads"] == 3
    pinned = knob_space("Offline", "pytorch", Tuning(threads=2), usable_cpus=4, max_batch=1,
                        start_batch=None, available_providers=[])
    assert pinned.values == {} and pinned.fixed["threads"] == 2


def test_a_torch_upgrade_changes_the_tuning_digest() -> None:
    host = {"cpu_model": "x", "logical_cpus": 2}
    old = digest_fields(host, {"torch": "2.13.0+cpu"})
    new = digest_fields(host, {"torch": "2.14.0+cpu"})
    assert old["version_torch"] == "2.13.0+cpu" and old != new


@pytest.mark.parametrize("precision, device, gpu_bf16, flags, problem", [
    ("fp32", "cpu", False, frozenset(), None),
    ("bf16", "cpu", False, frozenset({"avx512_bf16"}), None),
    ("bf16", "cpu", False, frozenset({"amx_bf16", "avx2"}), None),
    ("bf16", "cpu", False, frozenset({"avx2", "avx512f"}), "would be emulated"),
    ("fp16", "cpu", False, frozenset({"avx512_bf16"}), "slow fallbacks"),
    ("bf16", "cuda", False, frozenset(), "Ampere or later"),
    ("bf16", "cuda", True, frozenset(), None),
    ("fp16", "cuda", False, frozenset(), None),
    ("int4", "cpu", False, frozenset(), "unknown precision 'int4'"),
])
def test_which_precisions_run_natively_where(precision, device, gpu_bf16, flags, problem) -> None:
    from fleet.harness.backends.pytorch_backend import precision_problem

    found = precision_problem(precision, device, gpu_bf16=gpu_bf16, flags=flags)
    assert found is None if problem is None else problem in found


def test_bf16_runs_where_this_cpu_has_it_and_fp16_is_refused_on_the_cpu(tmp_path: Path) -> None:
    from fleet.harness.backends.pytorch_backend import PyTorchBackend, cpu_flags, precision_problem

    weights = {"linear.weight": torch.tensor(WEIGHT), "linear.bias": torch.tensor(BIAS)}
    torch.save(weights, tmp_path / "affine.pt")
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    bf16 = BackendOptions(threads=1, precision="bf16")
    if precision_problem("bf16", "cpu", gpu_bf16=False, flags=cpu_flags()) is None:
        backend = PyTorchBackend(tmp_path / "affine.pt", _AffineTask(), bf16)
        try:
            out = backend.run({"x": x}, 4)["y"]
            assert backend.precision == "bf16"
            assert backend.pinned(lambda: next(backend.module.parameters()).dtype)() == torch.bfloat16
        finally:
            backend.close()
        assert out.dtype == np.float32  # numpy has no bf16
        np.testing.assert_allclose(out, _expected(x), rtol=2e-2, atol=5e-2)
    else:
        with pytest.raises(HarnessError, match="cannot run bf16 here: bf16 on this CPU would be emulated"):
            PyTorchBackend(tmp_path / "affine.pt", _AffineTask(), bf16)
    with pytest.raises(HarnessError, match="cannot run fp16 here: fp16 on the CPU"):
        PyTorchBackend(tmp_path / "affine.pt", _AffineTask(), BackendOptions(threads=1, precision="fp16"))


def test_the_precision_reaches_the_measurements_and_systems_json() -> None:
    from types import SimpleNamespace

    from fleet.submission import sysjson
    from fleet.submission.measurement import measurement_json

    run = {"task": "rnnt", "backend": "pytorch", "precision": "bf16", "model_path": "/m/rnnt.pt"}
    data = measurement_json(run)
    assert data["weight_data_types"] == data["input_data_types"] == "bf16"
    host = SimpleNamespace(versions={"torch": "2.13.0+cpu"}, runs=[run, {**run, "precision": "fp32"}])
    assert sysjson._framework(host) == "PyTorch 2.13.0+cpu (bf16)"
    assert sysjson._framework(SimpleNamespace(versions=host.versions, runs=[{**run, "precision": "fp32"}])) \
        == "PyTorch 2.13.0+cpu"
