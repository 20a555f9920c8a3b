"""The knob space follows the node: usable CPUs, pins, providers present, the task's batch limit."""

from __future__ import annotations

from fleet.harness.spec import Tuning
from fleet.harness.tuning.space import knob_space, providers_for, thread_counts


def test_thread_counts_follow_usable_cpus() -> None:
    assert thread_counts(1) == [1]
    assert thread_counts(2) == [1, 2]
    assert thread_counts(6) == [1, 3, 6]
    assert thread_counts(16) == [1, 2, 4, 8, 16]


def test_edge_node_with_one_cpu_never_tries_two_threads() -> None:
    edge = knob_space("Offline", "onnxruntime", Tuning(execution_provider="cpu"), usable_cpus=1,
                      max_batch=None, start_batch=8, available_providers=["CPUExecutionProvider"])
    dc = knob_space("Offline", "onnxruntime", Tuning(execution_provider="cpu"), usable_cpus=2,
                    max_batch=None, start_batch=8, available_providers=["CPUExecutionProvider"])
    assert "threads" not in edge.values and edge.fixed["threads"] == 1
    assert dc.values["threads"] == [1, 2] and dc.start["threads"] == 2  # the untuned default first
    assert dc.start["batch_size"] == 8 and dc.values["batch_size"][0] == 4  # Offline ladder starts at 4
    assert edge.fixed["execution_provider"] == "cpu"


def test_server_tries_no_pool_bigger_than_the_harness_server_default() -> None:
    def server(usable: int, server_threads: int):
        return knob_space("Server", "onnxruntime", Tuning(), usable_cpus=usable, max_batch=None,
                          start_batch=None, available_providers=[], server_threads=server_threads)

    two = server(2, 1)  # a 2-CPU node: Server keeps one CPU for LoadGen, so only 1 thread
    assert "threads" not in two.values and two.fixed["threads"] == 1
    sixteen = server(16, 7)  # 8 physical cores of 16 CPUs: the default 7 is tried and started from
    assert sixteen.values["threads"] == [1, 2, 4, 7] and sixteen.start["threads"] == 7
    offline = knob_space("Offline", "onnxruntime", Tuning(), usable_cpus=16, max_batch=None,
                         start_batch=None, available_providers=[], server_threads=7)
    assert offline.values["threads"] == [1, 2, 4, 8, 16]  # the cap is Server's alone
    pinned = knob_space("Server", "onnxruntime", Tuning(threads=2), usable_cpus=2, max_batch=None,
                        start_batch=None, available_providers=[], server_threads=1)
    assert pinned.fixed["threads"] == 2  # an inventory pin wins


def test_pins_and_task_limits_fix_knobs() -> None:
    space = knob_space("Server", "onnxruntime", Tuning(threads=3, batch_size=4, graph_optimization="basic"),
                       usable_cpus=8, max_batch=None, start_batch=None, available_providers=[])
    assert space.values == {}
    assert space.fixed == {"threads": 3, "graph_optimization": "basic", "execution_provider": "cpu",
                           "batch_size": 4}
    fixed_batch = knob_space("Server", "onnxruntime", Tuning(), usable_cpus=1, max_batch=1, start_batch=None,
                             available_providers=[])
    assert fixed_batch.fixed["batch_size"] == 1
    latency = knob_space("SingleStream", "onnxruntime", Tuning(), usable_cpus=2, max_batch=None,
                         start_batch=None, available_providers=[])
    assert "batch_size" not in latency.values and "batch_size" not in latency.fixed
    null = knob_space("Offline", "null", Tuning(), usable_cpus=2, max_batch=None, start_batch=None,
                      available_providers=[])
    assert set(null.values) == {"batch_size"}


def test_gpu_nodes_try_the_other_gpu_provider_only_when_installed() -> None:
    assert providers_for("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["cpu"]
    assert providers_for("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["cuda"]
    both = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cuda", both) == ["cuda", "tensorrt"]
    assert providers_for("tensorrt", both) == ["tensorrt", "cuda"]
