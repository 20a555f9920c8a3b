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
    results: list[Any] = []
    running, release = threading.Event(), threading.Event()

    def hold() -> str:
        running.set()
        release.wait(10)
        return "held"

    holder = threading.Thread(target=lambda: results.append(backend.pinned(hold)()))
    holder.start()
    assert running.wait(10)  # the backend's thread is busy: the next call waits in its queue
    queued = threading.Thread(target=lambda: results.append(backend.run({"x": x}, 1)["y"]))
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
    assert results[0] == "held" and np.allclose(results[1], _expected(x))  # the model was still there
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
