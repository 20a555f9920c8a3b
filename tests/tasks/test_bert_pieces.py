"""BERT/SQuAD pieces without the harness: synthetic model + dataset, feature building, the
interleaved payload and the EM/F1 script, driven with onnxruntime directly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from taskhelpers import cpu_session, log_entries

from fleet.harness.accuracy import squad as acc
from fleet.harness.rules.v3_1 import MODELS
from fleet.harness.synthetic.bert import BertConfig, build_bert, write_bert
from fleet.harness.synthetic.squad import build_vocab, check_diversity, write_squad
from fleet.harness.tasks import bert_io
from fleet.harness.tasks.squad_features import (
    FIRST_UNIQUE_ID,
    build_features,
    convert_examples_to_features,
    load_tokenizer,
    read_squad_examples,
    split_context,
)


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("bert")
    model = write_bert(base / "model.onnx", BertConfig(vocab_size=len(build_vocab())))
    write_squad(base / "squad", model)
    return model, base / "squad"


@pytest.fixture(scope="module")
def built(assets: tuple[Path, Path]):
    return build_features(assets[1] / "dev-v1.1.json", assets[1] / "vocab.txt")


@pytest.fixture(scope="module")
def session(assets: tuple[Path, Path]) -> ort.InferenceSession:
    return cpu_session(assets[0])


def run_features(session: ort.InferenceSession, features, batch: int) -> list[bytes]:
    payloads: list[bytes] = []
    for first in range(0, len(features), batch):
        idx = list(range(first, min(first + batch, len(features))))
        start, end = session.run(list(bert_io.OUTPUT_NAMES), bert_io.make_feed(features, idx))
        payloads.extend(bert_io.response_payloads(start, end))
    return payloads


def tiny_vocab(tmp_path: Path, words: list[str]) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return path


def test_tokenisation_keeps_word_maps_and_wordpieces(tmp_path: Path) -> None:
    vocab = tiny_vocab(
        tmp_path,
        ["the", "smith", "'", "s", "cafe", "(", ")", "-", ".", "1895", "1943", "paint", "##ing", "who", "?"],
    )
    data = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "The  Smith's\tCafé (1895-1943). painting zzz",
                        "qas": [{"id": "q1", "question": "Who?", "answers": []}],
                    }
                ]
            }
        ]
    }
    examples = read_squad_examples(data)
    assert examples[0].doc_tokens == ("The", "Smith's", "Café", "(1895-1943).", "painting", "zzz")
    assert examples[0].word_offsets == (0, 5, 13, 18, 31, 40)
    features = convert_examples_to_features(examples, load_tokenizer(vocab))
    meta = features.meta[0]
    assert meta.tokens == (
        "[CLS]",
        "who",
        "?",
        "[SEP]",
        "the",
        "smith",
        "'",
        "s",
        "cafe",
        "(",
        "1895",
        "-",
        "1943",
        ")",
        ".",
        "paint",
        "##ing",
        "[UNK]",
        "[SEP]",
    )
    assert meta.token_to_orig_map == {
        4: 0,
        5: 1,
        6: 1,
        7: 1,
        8: 2,
        9: 3,
        10: 3,
        11: 3,
        12: 3,
        13: 3,
        14: 3,
        15: 4,
        16: 4,
        17: 5,
    }
    assert meta.unique_id == FIRST_UNIQUE_ID and all(meta.token_is_max_context.values())
    n = len(meta.tokens)
    assert features.input_mask[0].tolist() == [1] * n + [0] * (384 - n)
    assert features.segment_ids[0].tolist() == [0] * 4 + [1] * (n - 4) + [0] * (384 - n)
    assert (
        features.input_ids[0, 0] == 2 and features.input_ids[0, n - 1] == 3 and features.input_ids[0, n] == 0
    )
    assert features.input_ids.dtype == np.int64 and features.input_ids.shape == (1, 384)


def test_long_context_is_windowed_with_stride_128(tmp_path: Path) -> None:
    vocab = tiny_vocab(tmp_path, [f"w{i}" for i in range(10)] + ["q"])
    context = " ".join(f"w{i % 10}" for i in range(700))
    data = {
        "data": [
            {"paragraphs": [{"context": context, "qas": [{"id": "a", "question": "q q", "answers": []}]}]}
        ]
    }
    features = convert_examples_to_features(read_squad_examples(data), load_tokenizer(vocab))
    max_doc = 384 - 2 - 3
    starts = [min(features.meta[i].token_to_orig_map) for i in range(len(features))]
    first_doc = 4  # [CLS] q q [SEP]
    assert [features.meta[i].token_to_orig_map[first_doc] for i in range(len(features))] == [0, 128, 256, 384]
    assert len(features.meta[0].token_to_orig_map) == max_doc and starts == [first_doc] * 4
    assert [m.doc_span_index for m in features.meta] == [0, 1, 2, 3]
    # Word 300 is in spans 0 (left 300, right 78), 1 (172/206) and 2 (44/334): span 1 gives it
    # the most context, so only span 1 may start an answer there.
    assert features.meta[0].token_is_max_context[first_doc + 300] is False
    owners = [
        m
        for m in features.meta
        if any(v == 300 and m.token_is_max_context[k] for k, v in m.token_to_orig_map.items())
    ]
    assert len(owners) == 1 and owners[0].doc_span_index == 1


def test_get_final_text_projects_onto_the_original_words() -> None:
    assert acc.get_final_text("steve smith", "Steve Smith's") == ("Steve Smith", 0)
    assert acc.get_final_text("cafe", "the Café,") == ("Café", 4)
    assert acc.get_final_text("1895", "(1895-1943).") == ("1895", 1)
    assert acc.get_final_text("xyz", "Abc def") == ("Abc def", 0)  # no alignment: whole span


def test_official_normalisation_and_scores() -> None:
    assert acc.normalize_answer("The  Eiffel-Tower, an icon!") == "eiffeltower icon"
    assert acc.f1_score("the cat sat", "a cat sat down") == pytest.approx(0.8)
    data = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "",
                        "qas": [
                            {"id": "1", "answers": [{"text": "Paris"}, {"text": "the city of Paris"}]},
                            {"id": "2", "answers": [{"text": "x"}]},
                        ],
                    }
                ]
            }
        ]
    }
    assert acc.evaluate(data, {"1": "city of Paris"}) == {"exact_match": 50.0, "f1": 50.0}


def test_model_has_the_official_contract(session: ort.InferenceSession, built) -> None:
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {name: ("tensor(int64)", ["batch_size", 384]) for name in bert_io.INPUT_NAMES}
    outputs = {o.name: (o.type, o.shape) for o in session.get_outputs()}
    assert outputs == {name: ("tensor(float)", ["batch_size", 384]) for name in bert_io.OUTPUT_NAMES}
    _, _, features = built
    one = run_features(session, features, 1)
    four = run_features(session, features, 4)
    np.testing.assert_allclose(
        np.frombuffer(b"".join(one), np.float32),
        np.frombuffer(b"".join(four), np.float32),
        rtol=1e-4,
        atol=1e-4,
    )
    cfg = BertConfig(vocab_size=50)
    assert build_bert(cfg).SerializeToString() == build_bert(cfg).SerializeToString()


def test_payload_is_interleaved_start_end() -> None:
    start = np.arange(384, dtype=np.float32)
    end = -np.arange(384, dtype=np.float32)
    (payload,) = bert_io.response_payloads(start[None], end[None])
    assert len(payload) == 3072
    assert np.frombuffer(payload, np.float32)[:4].tolist() == [0.0, -0.0, 1.0, -1.0]
    s, e = bert_io.decode_payload(payload)
    np.testing.assert_array_equal(s, start)
    np.testing.assert_array_equal(e, end)
    short_s, _ = bert_io.decode_payload(payload[: 8 * 10])
    assert short_s[:10].tolist() == list(range(10)) and set(short_s[10:]) == {-10000.0}
    assert (
        bert_io.input_names_for(["token_type_ids", "attention_mask", "input_ids"])
        == bert_io.FAKE_QUANT_INPUT_NAMES
    )


def test_dataset_is_squad_v11_with_long_context(assets: tuple[Path, Path], built) -> None:
    data, examples, features = built
    assert data["version"] == "1.1"
    vocab = (assets[1] / "vocab.txt").read_text().splitlines()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == len(set(vocab))
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                (answer,) = qa["answers"]
                start = answer["answer_start"]
                assert paragraph["context"][start : start + len(answer["text"])] == answer["text"]
    spans: dict[int, int] = {}
    for meta in features.meta:
        spans[meta.example_index] = spans.get(meta.example_index, 0) + 1
    assert max(spans.values()) >= 2
    assert len(features) > len(examples)
    assert any(" ##" in " ".join(m.tokens) for m in features.meta)
    assert any("[UNK]" in m.tokens for m in features.meta)


@pytest.mark.parametrize("batch", [1, 8])
def test_correct_order_scores_the_teacher_f1(
    assets: tuple[Path, Path], session: ort.InferenceSession, built, tmp_path: Path, batch: int
) -> None:
    _, _, features = built
    log = tmp_path / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(log_entries(run_features(session, features, batch))))
    result = acc.score_accuracy_log(log, assets[1] / "dev-v1.1.json", assets[1] / "vocab.txt")
    assert result.text == '{"exact_match": 100.0, "f1": 100.0}\n'
    metric = MODELS["bert-99.9"].accuracy[0]
    assert float(re.match(metric.pattern, result.text).group(1)) == 100.0


def test_misordered_or_misdecoded_logits_lose_the_f1(session: ort.InferenceSession, built) -> None:
    data, examples, features = built
    payloads = run_features(session, features, 8)
    n = len(payloads)
    shifted = acc.score_entries(
        log_entries(payloads, [(i + 1) % n for i in range(n)]), data, examples, features
    )
    assert shifted.f1 < 50.0

    def transposed(p: bytes) -> bytes:  # [2, 384] instead of interleaved [384, 2]
        return np.ascontiguousarray(np.frombuffer(p, np.float32).reshape(384, 2).T).tobytes()

    assert (
        acc.score_entries(log_entries([transposed(p) for p in payloads]), data, examples, features).f1 < 50.0
    )
    reversed_batch = acc.score_entries(log_entries(payloads, list(range(n))[::-1]), data, examples, features)
    assert reversed_batch.f1 < 50.0


def test_subset_logs_answer_only_their_questions(session: ort.InferenceSession, built) -> None:
    data, examples, features = built
    payloads = run_features(session, features, 8)
    result = acc.score_entries(log_entries(payloads)[:3], data, examples, features)
    answered = [p for p in result.predictions.values() if p.text != acc.EMPTY_PREDICTION]
    assert 1 <= len(answered) <= 3 and result.f1 < 50.0


def test_generator_is_deterministic(assets: tuple[Path, Path], tmp_path: Path) -> None:
    write_squad(tmp_path, assets[0])
    assert (tmp_path / "dev-v1.1.json").read_bytes() == (assets[1] / "dev-v1.1.json").read_bytes()
    assert (tmp_path / "vocab.txt").read_bytes() == (assets[1] / "vocab.txt").read_bytes()


def test_generator_refuses_uniform_answers() -> None:
    with pytest.raises(ValueError, match="share an answer"):
        check_diversity({str(i): "The river" if i % 2 else "river" for i in range(20)}, 1, 10.0)
    with pytest.raises(ValueError, match="degenerate"):
        check_diversity({str(i): f"answer {i}" for i in range(20)}, 1, 80.0)
    with pytest.raises(ValueError, match="doc spans"):
        check_diversity({str(i): f"answer {i}" for i in range(20)}, 0, 10.0)


def test_split_context_matches_the_reference_whitespace() -> None:
    assert split_context("a\u202fb  c\nd") == (["a", "b", "c", "d"], [0, 2, 5, 7])
