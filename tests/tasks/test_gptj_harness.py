"""GPT-J (CNN/DailyMail) through the real harness and the pytorch backend: the reference's prompt
and truncation, beam-search generation whose ids do not depend on the batch, ROUGE and gen_len
against the official evaluation.py (run offline with the shims fleet uses), the harness bugs the
synthetic references must expose, the dataset and checkpoint faults, and a smoke Offline run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from taskhelpers import make_harness

from fleet.harness.accuracy import cnndm as rouge_accuracy
from fleet.harness.backends import BackendOptions, open_backend
from fleet.harness.errors import HarnessError
from fleet.harness.rules import v3_1 as rules
from fleet.harness.spec import Tuning
from fleet.harness.tasks import cnndm, get_task
from fleet.harness.tasks.gptj import GPTJ
from fleet.harness.tasks.gptj_generate import GENERATION, left_padded, new_tokens

pytestmark = pytest.mark.timeout(900)

TASK = "gptj-99"
SAMPLES = 8
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def assets(asset_shelf) -> Any:
    return asset_shelf.get(TASK, SAMPLES, "full")  # full: one prompt is cut at 1919 tokens


@pytest.fixture(scope="module")
def model_dir(assets) -> Path:
    return assets.root / assets.marker["model"]["file"]


@pytest.fixture(scope="module")
def task_on(assets, model_dir) -> GPTJ:
    task = get_task(TASK)
    task.model = model_dir
    task.open(assets.dataset, assets.root / "unused-cache")
    return task


@pytest.fixture(scope="module")
def backend(model_dir, task_on) -> Any:
    opened = open_backend("pytorch", model_dir, task_on, BackendOptions(threads=1))
    yield opened
    opened.close()


def generate_all(task: GPTJ, backend: Any, batch: int) -> list[np.ndarray]:
    """Every article's response through the task's infer, `batch` articles a call."""
    out: list[np.ndarray] = []
    count = task.total_sample_count
    for start in range(0, count, batch):
        rows = range(start, min(start + batch, count))
        feed = {"input_ids": [task.load_sample(i)["input_ids"] for i in rows]}
        out += task.postprocess(backend.pinned(task.infer)(backend, feed, len(rows)), len(rows), indices=rows)
    return out


@pytest.fixture(scope="module")
def responses(task_on, backend) -> list[np.ndarray]:
    return generate_all(task_on, backend, batch=1)


def write_log(path: Path, payloads: list[np.ndarray], order: list[int] | None = None) -> Path:
    """An accuracy log answering article n with payloads[order[n]] (the identity by default)."""
    order = order if order is not None else list(range(len(payloads)))
    path.write_text(json.dumps([{"seq_id": n, "qsl_idx": n,
                                 "data": np.asarray(payloads[k], "<i8").tobytes().hex()}
                                for n, k in enumerate(order)]))
    return path


def official_metrics(official: Path, model_dir: Path, logs: list[Path],
                     dataset: Path) -> list[dict[str, float]]:
    """The official evaluation.py's result dict for each log, run offline (gptj_official.py's shims)."""
    script = official / "language" / "gpt-j" / "evaluation.py"
    shimmed = [sys.executable, str(HERE / "gptj_official.py"), str(script), str(model_dir),
               str(cnndm.dataset_path(dataset))]
    proc = subprocess.run([*shimmed, *map(str, logs)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{'rouge1'")]
    assert len(lines) == len(logs), proc.stdout[-3000:]
    # NumPy 2 prints np.float64(42.1) where NumPy 1 printed 42.1: read the numbers either way.
    return [{k: float(v) for k, v in re.findall(r"'(\w+)': (?:np\.\w+\()?([\d.]+)", ln)} for ln in lines]


def test_synth_writes_the_reference_format_with_diverse_teacher_summaries(assets, model_dir, task_on) -> None:
    items = json.loads(cnndm.dataset_path(assets.dataset).read_text())
    assert len(items) == SAMPLES
    assert all(set(item) == {"instruction", "input", "output"} for item in items)
    assert {item["instruction"] for item in items} == {"Summarize the following news article:"}
    summaries = [item["output"] for item in items]
    assert len(set(summaries)) == SAMPLES and len({len(s) for s in summaries}) > SAMPLES // 2
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "config.json", "model.safetensors"):
        assert (model_dir / name).is_file(), name
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "gptj" and config["n_layer"] == 2 and config["rotary_dim"] == 16
    assert assets.marker["reference"] == "teacher" and assets.marker["prompt_tokens"][1] == 1919


def test_a_prompt_is_the_alpaca_template_cut_at_1919_tokens(task_on, assets) -> None:
    items = json.loads(cnndm.dataset_path(assets.dataset).read_text())
    tokenizer = task_on.tokenizer
    first = tokenizer.decode(task_on.load_sample(0)["input_ids"].tolist())
    assert first == ("Below is an instruction that describes a task, paired with an input that provides "
                     "further context. Write a response that appropriately completes the request.\n\n"
                     "### Instruction:\nSummarize the following news article:\n\n"
                     f"### Input:\n{items[0]['input']}\n\n### Response:")
    lengths = task_on.prompt_tokens
    assert max(lengths) == 1919 and sorted(lengths)[-2] < 1919
    long = lengths.index(1919)
    full = tokenizer(cnndm.Article(**items[long]).prompt)["input_ids"]
    assert len(full) > 1919 and task_on.load_sample(long)["input_ids"].tolist() == full[:1919]
    assert task_on.load_sample(long)["input_ids"].dtype == np.int64


def test_responses_are_the_teachers_new_tokens_whatever_the_batch(task_on, backend, responses,
                                                                  assets) -> None:
    """Left-padded batches of 3 and 8 give every article the ids it gets alone (the rules' batch 1)."""
    eos = task_on.tokenizer.eos_token_id
    for ids in responses:
        assert ids.dtype == np.int64 and 30 <= len(ids) <= 129  # 30-128 new tokens, then eos
        assert eos not in ids[:-1].tolist()
    for batch in (3, SAMPLES):
        batched = generate_all(task_on, backend, batch)
        assert all(np.array_equal(a, b) for a, b in zip(responses, batched, strict=True)), batch
    texts = task_on.tokenizer.batch_decode([r.tolist() for r in responses], skip_special_tokens=True)
    items = json.loads(cnndm.dataset_path(assets.dataset).read_text())
    assert [t.strip() for t in texts] == [item["output"] for item in items]


def test_left_padding_and_the_cut_after_eos() -> None:
    ids, mask = left_padded([np.array([5, 6, 7]), np.array([8])], pad=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert new_tokens(np.array([4, 9, 0, 0, 0]), eos=0).tolist() == [4, 9, 0]
    assert new_tokens(np.array([4, 9, 3]), eos=0).tolist() == [4, 9, 3]
    assert GENERATION == {"num_beams": 4, "early_stopping": True, "max_new_tokens": 128, "min_new_tokens": 30}


def test_fleet_rouge_equals_the_official_evaluation_script(official_inference, model_dir, assets, responses,
                                                           task_on, tmp_path: Path) -> None:
    """The same logs, scored by fleet and by evaluation.py: right, and rotated with duplicates."""
    rotated = [(i + 1) % SAMPLES for i in range(SAMPLES)]
    logs = {"right": write_log(tmp_path / "right.json", responses),
            "rotated": write_log(tmp_path / "rotated.json", responses, rotated)}
    entries = json.loads(logs["rotated"].read_text())  # a second response of a sample is never scored
    logs["rotated"].write_text(json.dumps(entries + json.loads(logs["right"].read_text())[:3]))
    officials = official_metrics(official_inference, model_dir, list(logs.values()), assets.dataset)
    for (name, log), official in zip(logs.items(), officials, strict=True):
        ours = task_on.accuracy(log, assets.dataset)
        metrics = rouge_accuracy.score_accuracy_log(log, assets.dataset, task_on.tokenizer).metrics
        assert metrics == pytest.approx(official, abs=0), name
        assert ours.value == metrics["rouge1"]
    right = rouge_accuracy.score_accuracy_log(logs["right"], assets.dataset, task_on.tokenizer).metrics
    assert right["rouge1"] == right["rouge2"] == right["rougeL"] == 100.0 and right["gen_num"] == SAMPLES


def test_accuracy_txt_is_what_the_checker_parses(task_on, responses, assets, tmp_path: Path) -> None:
    text = task_on.accuracy(write_log(tmp_path / "log.json", responses), assets.dataset).text
    assert "np." not in text
    lines = text.splitlines()
    assert lines[:3] == ["", "Results", ""]
    for model in ("gptj-99", "gptj-99.9"):
        for metric in rules.MODELS[model].accuracy:
            found = [float(m.group(1)) for ln in lines if (m := re.match(metric.pattern, ln))]
            assert len(found) == 1, (metric.name, text)
            if metric.name != "GEN_LEN":
                assert found[0] >= metric.threshold, metric.name
    # gen_len's target is the real set's: on synthetic data, its ratio to the references' length.
    assert re.search(r"^synthetic set: gen_len is 1\.0000 x the references' \d+ characters", text,
                     re.MULTILINE)


def test_the_sentence_split_moves_only_rougeLsum(monkeypatch) -> None:
    """rouge1/2/L never see the newlines the split puts in; gen_len counts one per single space;
    rougeLsum scores per line, so it alone depends on where sentences end."""
    preds = ["The U.S. team won. Fans cheered in the streets.", "Mr. Smith said no. He left at noon."]
    refs = ["The U.S. team won the final. Fans cheered.", "Mr. Smith left. He said no at noon."]
    ours = rouge_accuracy.metrics_of(preds, refs)
    def halves(text: str) -> list[str]:  # split at the middle space, wherever the sentences end
        words = text.split(" ")
        return [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]

    splits = {"none": lambda t: [t], "halves": halves}
    for name, split in splits.items():
        monkeypatch.setattr(rouge_accuracy, "split_sentences", split)
        other = rouge_accuracy.metrics_of(preds, refs)
        for key in ("rouge1", "rouge2", "rougeL", "gen_len", "gen_num"):
            assert other[key] == ours[key], (name, key)
        assert other["rougeLsum"] != ours["rougeLsum"], name
    monkeypatch.undo()
    two_spaces = rouge_accuracy.metrics_of(["A first one.  A second one."], ["A first one."])
    assert two_spaces["gen_len"] == len("A first one.\nA second one.")  # the split drops one space


def test_harness_bugs_lower_rouge_clearly(task_on, backend, responses, assets, tmp_path: Path) -> None:
    """Shuffled articles, greedy decoding and a wrong prompt template each score far below 100."""
    import torch

    tokenizer, eos = task_on.tokenizer, task_on.tokenizer.eos_token_id
    shuffled = [(i + 3) % SAMPLES for i in range(SAMPLES)]
    scores = {"shuffled": task_on.accuracy(write_log(tmp_path / "s.json", responses, shuffled),
                                           assets.dataset)}
    model = backend.module
    items = [cnndm.Article(**item) for item in json.loads(cnndm.dataset_path(assets.dataset).read_text())]
    no_input = ("Below is an instruction that describes a task.\n\n"
                "### Instruction:\n{instruction}\n\n### Response:")
    variants = {
        "greedy": ([task_on.load_sample(i)["input_ids"] for i in range(SAMPLES)], {"num_beams": 1}),
        "template": ([np.asarray(tokenizer(no_input.format(instruction=a.instruction) + a.input)
                                 ["input_ids"][:1919]) for a in items], {}),
    }
    for name, (prompts, change) in variants.items():
        out = []
        for ids in prompts:
            with torch.inference_mode():
                generated = backend.pinned(model.generate)(
                    input_ids=torch.from_numpy(np.asarray(ids, np.int64)[None]), pad_token_id=eos,
                    **{**GENERATION, **change})
            out.append(new_tokens(generated[0, len(ids):].numpy(), eos))
        scores[name] = task_on.accuracy(write_log(tmp_path / f"{name}.json", out), assets.dataset)
    for name, result in scores.items():
        assert result.value < 80.0, (name, result.text)


@pytest.mark.parametrize(("fault", "message"), [
    ("no-file", r"cnn_eval\.json does not exist"),
    ("no-output", r"item 2 has no output \(a string\)"),
    ("empty-article", r"item 1 has an empty article"),
    ("not-a-list", r"expected a non-empty JSON list"),
])
def test_a_broken_dataset_is_one_line_naming_the_item(assets, model_dir, tmp_path: Path, fault: str,
                                                      message: str) -> None:
    dataset = tmp_path / "cnndm"
    shutil.copytree(assets.dataset, dataset)
    path = cnndm.dataset_path(dataset)
    items = json.loads(path.read_text())
    if fault == "no-file":
        path.unlink()
    elif fault == "no-output":
        del items[2]["output"]
    elif fault == "empty-article":
        items[1]["input"] = "  "
    else:
        items = {"data": items}
    if path.exists():
        path.write_text(json.dumps(items))
    task = get_task(TASK)
    task.model = model_dir
    with pytest.raises(HarnessError, match=message) as caught:
        task.open(dataset, tmp_path / "cache")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("fault", "message"), [
    ("vocab", r"the tokenizer has \d+ tokens but config\.json's vocab_size is 100: the tokenizer files"),
    ("model-type", r"config\.json says model_type 'gpt2', not 'gptj'"),
    ("no-tokenizer", r"no usable tokenizer"),
])
def test_a_checkpoint_that_is_not_gptj_is_one_line(assets, model_dir, tmp_path: Path, fault: str,
                                                   message: str) -> None:
    broken = tmp_path / "checkpoint-final"
    shutil.copytree(model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    if fault == "vocab":
        config["vocab_size"] = 100
    elif fault == "model-type":
        config["model_type"] = "gpt2"
    else:
        for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
            (broken / name).unlink()
    (broken / "config.json").write_text(json.dumps(config))
    task = get_task(TASK)
    task.model = broken
    with pytest.raises(HarnessError, match=message) as caught:
        if fault == "model-type":
            task.torch_model(broken)
        else:
            task.open(assets.dataset, tmp_path / "cache")
    assert "\n" not in str(caught.value)


def test_offline_smoke_run_is_valid_and_scores_the_teacher(assets, tmp_path: Path) -> None:
    harness = make_harness(TASK, assets.root, assets.marker, tmp_path / "out", ["Offline"],
                           ["performance", "accuracy"], tuning=Tuning(batch_size=2))
    try:
        perf, acc = (harness.run_one("Offline", mode) for mode in ("performance", "accuracy"))
    finally:
        harness.backend.close()
    assert perf["outcome"] == "ok" and perf["result_validity"] == "VALID", perf["error"]
    assert perf["precision"] == "fp32" and perf["batch_size"] == 2 and perf["synthetic"] is True
    assert acc["outcome"] == "ok" and acc["accuracy"] == 100.0, acc["error"]
    pace = acc["calibration"]["samples_per_s"]  # every article at the calibrated pace
    assert acc["accuracy_estimate_s"] == pytest.approx(SAMPLES / pace, abs=0.1)
    text = (tmp_path / "out" / acc["dir"] / "accuracy.txt").read_text()
    assert "{'rouge1': 100.0, 'rouge2': 100.0, 'rougeL': 100.0, 'rougeLsum': 100.0, 'gen_len': " in text


SIX_B = {"model_type": "gptj", "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
         "vocab_size": 50400, "n_positions": 2048, "n_inner": None}


def test_the_memory_need_is_the_weights_and_a_beam_search_cache(model_dir, backend, tmp_path: Path) -> None:
    from fleet.harness.capacity import memory_refusal
    from fleet.harness.tasks.gptj_generate import memory_need, parameter_count

    tiny = json.loads((model_dir / "config.json").read_text())
    assert parameter_count(tiny) == sum(p.numel() for p in backend.module.parameters())
    assert parameter_count(SIX_B) == 6_050_882_784
    fp32 = memory_need(SIX_B, "fp32")
    assert (fp32.bytes, fp32.per_sample) == (31_719_723_904, 7_516_192_768)
    assert fp32.why == ("GPT-J at fp32 needs 31.7 GB (24.2 GB of weights, 7.5 GB for a 4-beam, 2048-token "
                        "key/value cache)")
    assert memory_need(SIX_B, "bf16").bytes == 15_859_861_952
    assert fp32.largest_batch(64 * 2**30) == 5 and fp32.largest_batch(32 * 10**9) == 1
    big = tmp_path / "checkpoint-final"
    big.mkdir()
    (big / "config.json").write_text(json.dumps(SIX_B))
    assert memory_refusal("node9", TASK, big, "fp32", 16 * 2**30) == (
        "node9 cannot hold gptj-99: GPT-J at fp32 needs 31.7 GB (24.2 GB of weights, 7.5 GB for a 4-beam, "
        "2048-token key/value cache), and node9 has 17.2 GB of memory; run it on a host with more, or at "
        "bf16 where its CPU or GPU computes it natively (fleet_tuning: {precision: bf16})")
    assert memory_refusal("node9", TASK, big, "bf16", 16 * 2**30) is None
    assert memory_refusal("node9", "dlrm-v2-99", big, "fp32", 1) is None  # a task that does not say


def test_the_backend_refuses_a_model_the_node_cannot_hold_before_loading(model_dir, tmp_path: Path) -> None:
    huge = tmp_path / "checkpoint-final"
    shutil.copytree(model_dir, huge)
    (huge / "config.json").write_text(json.dumps({**SIX_B, "n_layer": 28_000}))  # ~32 TB: no node has it
    task = get_task(TASK)
    line = (r"^gptj-99 cannot load here: GPT-J at fp32 needs \d+\.\d GB .*, and this node has \d+\.\d GB of "
            r"available memory: run it where")
    with pytest.raises(HarnessError, match=line) as caught:
        open_backend("pytorch", huge, task, BackendOptions(threads=1))
    assert "\n" not in str(caught.value)


def test_the_batch_sizes_tried_stop_where_the_memory_does(model_dir, tmp_path: Path) -> None:
    """A model whose per-prompt cache is a third of the node's memory: batches of about 3 at most."""
    from fleet.harness.hostfacts import meminfo_bytes

    config = json.loads((model_dir / "config.json").read_text())
    per_position = 2 * config["n_layer"] * config["n_embd"] * 4 * 4  # k and v, 4 beams, fp32
    third = tmp_path / "checkpoint-final"
    shutil.copytree(model_dir, third)
    config["n_positions"] = int(meminfo_bytes("MemAvailable") / 3 / per_position)
    (third / "config.json").write_text(json.dumps(config))
    opened = open_backend("pytorch", third, get_task(TASK), BackendOptions(threads=1))
    try:
        assert 2 <= opened.max_useful_batch <= 4
    finally:
        opened.close()
