"""DLRM-v2 (multi-hot Criteo) through the real harness and the pytorch backend: the reference's
sample aggregation, the day_23 files and their faults, checkpoints in torchrec's names, AUC
against the official accuracy-dlrm.py, the harness bugs the synthetic labels must expose, and
Offline/Server through LoadGen with TEST01/TEST05."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from taskhelpers import make_harness, paced_compliance_runs

from fleet.harness.backends import BackendOptions, open_backend
from fleet.harness.errors import HarnessError
from fleet.harness.rules import v3_1 as rules
from fleet.harness.tasks import criteo, get_task
from fleet.harness.tasks.dlrm import DLRMv2

pytestmark = pytest.mark.timeout(900)

TASK = "dlrm-v2-99"
SAMPLES = 16
TOOLS = "recommendation/dlrm_v2/pytorch/tools"
PACE_S = 0.01  # per aggregated sample in Offline runs that TEST01/TEST05 compare (~2 ms unpaced)


@pytest.fixture(scope="module")
def assets(asset_shelf) -> Any:
    return asset_shelf.get(TASK, SAMPLES, "small")


@pytest.fixture(scope="module")
def task_on(assets) -> DLRMv2:
    task = get_task(TASK)
    task.open(assets.dataset, assets.root / "unused-cache")
    return task


@pytest.fixture(scope="module")
def backend(assets, task_on) -> Any:
    opened = open_backend("pytorch", assets.model, task_on, BackendOptions(threads=1))
    yield opened
    opened.close()


def infer_all(task: DLRMv2, backend: Any, batch: int = 5) -> list[np.ndarray]:
    """Every sample's [prediction, label] rows through the task's infer, `batch` samples a call."""
    out: list[np.ndarray] = []
    count = task.total_sample_count
    for start in range(0, count, batch):
        samples = [task.load_sample(i) for i in range(start, min(start + batch, count))]
        feed = {name: [s[name] for s in samples] for name in ("dense", "sparse", "label")}
        out += task.postprocess(backend.pinned(task.infer)(backend, feed, len(samples)), len(samples),
                                indices=range(start, start + len(samples)))
    return out


def write_log(path: Path, payloads: list[np.ndarray]) -> Path:
    path.write_text(json.dumps([{"seq_id": i, "qsl_idx": i, "data": np.asarray(p, "<f4").tobytes().hex()}
                                for i, p in enumerate(payloads)]))
    return path


def official_auc(official: Path, log: Path) -> str:
    """stdout of the official accuracy-dlrm.py (scikit-learn from the criteo extra)."""
    script = official / TOOLS / "accuracy-dlrm.py"
    proc = subprocess.run([sys.executable, str(script), "--mlperf-accuracy-file", str(log)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_run_lengths_are_the_reference_trace(official_inference: Path) -> None:
    """The first runs of tools/dist_trace_verification.txt, the reference's own one-at-a-time
    loop, and the 330,067 samples of the real evaluation half."""
    trace = [tuple(int(x) for x in line.split(", ")) for line in
             (official_inference / TOOLS / "dist_trace_verification.txt").read_text().splitlines()
             if re.fullmatch(r"\d+, \d+, \d+", line.strip())]
    assert len(trace) >= 20
    offsets = criteo.sample_offsets(1_000_000)
    assert [(int(a), int(b), int(b - a)) for a, b in itertools.pairwise(offsets)][: len(trace)] == trace
    assert [t[2] for t in trace[:12]] == [200, 200, 200, 200, 500, 700, 200, 100, 100, 500, 300, 200]
    quantile_text = (official_inference / TOOLS / "dist_quantile.txt").read_text()
    quantile = np.fromstring(quantile_text, dtype=int, sep=", ")
    assert tuple(quantile) == criteo.DIST_QUANTILE
    np.random.seed(123)  # main.py's seed, then the dataset's loop
    reference, qo = [0], 0
    while qo < 100_000:
        qo = min(qo + int(quantile[np.random.randint(low=0, high=len(quantile))]), 100_000)
        reference.append(qo)
    assert criteo.sample_offsets(100_000).tolist() == reference  # the last run cut to fit
    assert len(criteo.sample_offsets(criteo.evaluation_rows(178_274_637))) - 1 == 330_067
    assert criteo.evaluation_rows(178_274_637) == 89_137_319


def test_synth_writes_the_reference_files_sized_to_the_samples(assets, task_on) -> None:
    import torch

    dataset = assets.dataset
    with zipfile.ZipFile(dataset / criteo.SPARSE) as archive:
        assert [i.filename for i in archive.infolist()] == [f"{k}.npy" for k in range(26)]
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    stored = np.load(dataset / criteo.SPARSE)
    total = np.load(dataset / criteo.DENSE).shape[0]
    rows = criteo.evaluation_rows(total)
    for k, hot in enumerate(criteo.HOTNESS):  # the memory map reads what numpy reads
        member = stored[str(k)]
        assert member.dtype == np.int32 and member.shape == (total, hot)
        np.testing.assert_array_equal(task_on._day.sparse[k], member[:rows])
    assert np.load(dataset / criteo.LABELS).shape == (total, 1) and task_on._day.rows == rows
    assert task_on.total_sample_count == SAMPLES and int(task_on.sample_rows.sum()) == rows
    assert assets.marker["positive_share"] == 0.5 and assets.marker["evaluation_rows"] == rows
    state = torch.load(assets.model, weights_only=True)
    assert {"model.sparse_arch.embedding_bag_collection.embedding_bags.t_cat_20.weight",
            "model.dense_arch.model._mlp.2._linear.bias", "model.inter_arch.crossnet.V_kernels.2",
            "model.over_arch.model.0._mlp.3._linear.weight", "model.over_arch.model.1.weight"} <= set(state)


def test_a_sample_is_its_rows_in_order(task_on) -> None:
    day, offsets = task_on._day, criteo.sample_offsets(task_on._day.rows)
    sample = task_on.load_sample(3)
    start, end = offsets[3], offsets[4]
    np.testing.assert_array_equal(sample["dense"], day.dense[start:end])
    np.testing.assert_array_equal(sample["sparse"][:, :3], day.sparse[0][start:end])
    np.testing.assert_array_equal(sample["sparse"][:, -1:], day.sparse[25][start:end])
    np.testing.assert_array_equal(sample["label"], day.labels[start:end])


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in criteo.FILES:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _resave_npz(path: Path, change: Any, compressed: bool = False) -> None:
    members = dict(np.load(path))
    change(members)
    (np.savez_compressed if compressed else np.savez)(path, **members)


@pytest.mark.parametrize("fault, message", [
    ("missing", r"Criteo file .*day_23_labels\.npy is missing"),
    ("compressed", r"day_23_sparse_multi_hot\.npz: member 0\.npy is compressed; .*numpy\.savez"),
    ("int64 member", r"day_23_sparse_multi_hot\.npz: member 7\.npy is int64, the reference reads int32"),
    ("float64 dense", r"day_23_dense\.npy is float64 \[\d+, 13\], expected float32"),
    ("truncated dense", r"day_23_dense\.npy is not a complete \.npy array"),
    ("truncated npz", r"day_23_sparse_multi_hot\.npz"),
    ("fewer labels", r"Criteo file day_23_labels\.npy has \d+ rows, day_23_dense\.npy has \d+"),
    ("hotness", r"member 20\.npy is \[\d+, 99\], the reference's hotness of feature 20 is 100"),
])
def test_a_broken_day23_file_is_one_line_naming_it(assets, tmp_path: Path, fault: str, message: str) -> None:
    data = _copy(assets.dataset, tmp_path / "criteo")
    if fault == "missing":
        (data / criteo.LABELS).unlink()
    elif fault == "compressed":
        _resave_npz(data / criteo.SPARSE, lambda m: None, compressed=True)
    elif fault == "int64 member":
        _resave_npz(data / criteo.SPARSE, lambda m: m.update({"7": m["7"].astype(np.int64)}))
    elif fault == "float64 dense":
        np.save(data / criteo.DENSE, np.load(data / criteo.DENSE).astype(np.float64))
    elif fault == "truncated dense":
        blob = (data / criteo.DENSE).read_bytes()
        (data / criteo.DENSE).write_bytes(blob[: len(blob) // 2])
    elif fault == "truncated npz":
        blob = (data / criteo.SPARSE).read_bytes()
        (data / criteo.SPARSE).write_bytes(blob[: len(blob) - 5000])
    elif fault == "fewer labels":
        np.save(data / criteo.LABELS, np.load(data / criteo.LABELS)[:-3])
    else:
        _resave_npz(data / criteo.SPARSE, lambda m: m.update({"20": m["20"][:, :99].copy()}))
    with pytest.raises(HarnessError, match=message) as caught:
        get_task(TASK).open(data, tmp_path / "cache")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("fault, message", [
    ("missing", r"checkpoint .* lacks inter_arch\.crossnet\.bias\.1"),
    ("shape", r"checkpoint .*: over_arch\.model\.0\._mlp\.1\._linear\.weight has shape \(128, 127\), "
              r".* needs \(128, 128\)"),
    ("table", r"checkpoint .* lacks sparse_arch\.embedding_bag_collection\.embedding_bags\.t_cat_25\.weight"),
    ("extra", r"checkpoint .* has weights DLRM_DCN does not use: extra\.weight"),
    ("not a checkpoint", r"checkpoint .* is not a readable torch state dict"),
])
def test_a_broken_checkpoint_is_one_line_naming_the_tensor(assets, tmp_path: Path, fault: str,
                                                          message: str) -> None:
    import torch

    state = torch.load(assets.model, weights_only=True)
    path = tmp_path / "dlrm.pt"
    if fault == "missing":
        del state["model.inter_arch.crossnet.bias.1"]
    elif fault == "shape":
        key = "model.over_arch.model.0._mlp.1._linear.weight"
        state[key] = state[key][:, :127].clone()
    elif fault == "table":
        del state["model.sparse_arch.embedding_bag_collection.embedding_bags.t_cat_25.weight"]
    elif fault == "extra":
        state["model.extra.weight"] = torch.zeros(2)
    if fault == "not a checkpoint":
        path.write_bytes(b"not a zip")
    else:
        torch.save(state, path)
    with pytest.raises(HarnessError, match=message):
        open_backend("pytorch", path, get_task(TASK), BackendOptions(threads=1))


def test_distributed_and_bare_names_load_alike(assets, tmp_path: Path) -> None:
    import torch

    from fleet.harness.tasks.dlrm_model import load_dlrm

    state = torch.load(assets.model, weights_only=True)
    bare = {k.removeprefix("model."): v for k, v in state.items()}
    torch.save({f"module.model.{k}": v for k, v in bare.items()}, tmp_path / "dmp.pt")
    torch.save(bare, tmp_path / "bare.pt")
    a, b = load_dlrm(tmp_path / "dmp.pt").state_dict(), load_dlrm(tmp_path / "bare.pt").state_dict()
    assert a.keys() == bare.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_auc_agrees_with_the_official_accuracy_script(official_inference: Path, assets, task_on, backend,
                                                      tmp_path: Path) -> None:
    payloads = infer_all(task_on, backend)
    assert [len(p) for p in payloads] == task_on.sample_rows.tolist()
    log = write_log(tmp_path / "mlperf_log_accuracy.json", payloads)
    ours = task_on.accuracy(log, assets.dataset)
    assert official_auc(official_inference, log) == ours.text
    assert ours.value == 100.0 and ours.text.splitlines()[-1].startswith("AUC=100.000%, accuracy=100.000%")
    # Half the predictions inverted: both agree on a worse figure, too.
    worse = [np.column_stack([1 - p[:, 0], p[:, 1]]) if i % 2 else p for i, p in enumerate(payloads)]
    log = write_log(tmp_path / "worse.json", worse)
    ours = task_on.accuracy(log, assets.dataset)
    assert official_auc(official_inference, log) == ours.text and ours.value < 80


class LexicalFeatureOrder(DLRMv2):
    """A harness that concatenates the npz members in name order (0, 1, 10, 11, ...)."""

    def load_sample(self, index: int) -> dict[str, np.ndarray]:
        sample = super().load_sample(index)
        start, end = self._offsets[index], self._offsets[index + 1]
        order = sorted(range(len(criteo.HOTNESS)), key=str)
        sample["sparse"] = np.concatenate([self._day.sparse[k][start:end] for k in order], axis=1)
        return sample


@pytest.mark.parametrize("bug", ["rows of another sample", "feature order", "pairs swapped"])
def test_harness_bugs_drop_auc_clearly(assets, task_on, backend, tmp_path: Path, bug: str) -> None:
    good = infer_all(task_on, backend)
    if bug == "rows of another sample":  # predictions of a shuffled sample order, each row's own label
        order = np.random.default_rng(3).permutation(len(good))
        predictions = np.concatenate([good[i][:, 0] for i in order])
        ends = np.cumsum([len(p) for p in good])[:-1]
        moved = np.split(predictions, ends)
        payloads = [np.column_stack([p, g[:, 1]]) for p, g in zip(moved, good, strict=True)]
    elif bug == "feature order":
        wrong = LexicalFeatureOrder()
        wrong.open(assets.dataset, tmp_path)
        payloads = infer_all(wrong, backend)
    else:
        payloads = [p[:, ::-1] for p in good]
    log = write_log(tmp_path / "mlperf_log_accuracy.json", payloads)
    if bug == "pairs swapped":
        with pytest.raises(HarnessError, match=r"not a 0/1 label: the payload must be \[prediction, label\]"):
            task_on.accuracy(log, assets.dataset)
        return
    auc = task_on.accuracy(log, assets.dataset).value
    print(bug, "AUC", auc)
    assert auc < 65


def test_offline_and_server_score_the_teacher_and_pass_compliance(assets, tmp_path: Path) -> None:
    entries = paced_compliance_runs(TASK, assets, tmp_path, "Server", PACE_S, 1.5 / PACE_S)
    assert entries[("Offline", "performance")]["backend"] == "pytorch"  # the task's own: none was named
    auc = next(m for m in rules.MODELS[TASK].accuracy if m.name == "AUC")
    for scenario in ("Offline", "Server"):
        text = (tmp_path / TASK / scenario / "accuracy" / "accuracy.txt").read_text()
        parsed = [float(m.group(1)) for line in text.splitlines() if (m := re.match(auc.pattern, line))]
        assert parsed == [100.0] and parsed[0] >= auc.threshold == 79.5069


def test_scenarios_and_backends_v31_does_not_have_are_refused(assets, tmp_path: Path) -> None:
    for scenario in ("SingleStream", "MultiStream"):
        with pytest.raises(HarnessError, match=f"{TASK} has no {scenario} scenario in v3.1"):
            make_harness(TASK, assets.root, assets.marker, tmp_path, [scenario], ["performance"])
    with pytest.raises(HarnessError, match=r"dlrm-v2-99 has no onnxruntime model .*use backend pytorch"):
        open_backend("onnxruntime", assets.model, get_task(TASK), BackendOptions())


def test_a_synthetic_set_says_what_it_needs_and_refuses_a_node_without_room(tmp_path: Path,
                                                                            monkeypatch) -> None:
    from fleet.harness.synthetic import dlrm_assets, needs

    line = needs(TASK, 204_800)
    assert line == ("a synthetic DLRM-v2 set of 204800 aggregated samples is 55,344,600 evaluation rows "
                    "(110,689,200 in day_23), 100.9 GB on the node's disk, and 50.5 GB of RAM for "
                    "LoadGen's loaded samples; each node that runs it checks its free disk and RAM before "
                    "making it, and refuses in one line")
    assert needs("resnet50", 1024) is None and needs(TASK, None) is None
    monkeypatch.setattr(dlrm_assets.shutil, "disk_usage", lambda p: type("U", (), {"free": 10**9})())
    room = r"set of 4096 aggregated samples .* has 1\.0 GB free: free \d+\.\d GB there"
    with pytest.raises(HarnessError, match=room):
        dlrm_assets.write_day23(tmp_path / "criteo", None, 4096, 0)
    assert not (tmp_path / "criteo" / criteo.DENSE).exists()
