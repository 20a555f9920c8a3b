"""A synthetic BERT question-answering model with the official fp32 ONNX contract.

Same interface as the MLPerf `model.onnx` (HF BertForQuestionAnswering export): inputs
`input_ids`, `input_mask`, `segment_ids` int64 [batch_size, 384]; outputs
`output_start_logits`, `output_end_logits` float32 [batch_size, 384]. Inside: word + position +
token-type embeddings, LayerNorm, post-LN transformer layers (multi-head self-attention with
the -10000 padding mask, GELU feed-forward), and a 2-way span head, all written with
onnx.helper + numpy (nodes have no torch). Only depth and width are small.

The weights are random but not BERT's 0.02-std init: that init makes every token look alike
and the span head predict the same positions for every input. Here word embeddings dominate
and the span head is large, so answers depend on the text (what a teacher-labelled dataset
needs to catch misordered samples), and the segment-0 (question) tokens get extra attention
so that two questions on one paragraph get different answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from fleet.harness.synthetic.graph import FLOAT, INT64, GraphBuilder, tensor
from fleet.harness.tasks.bert_io import INPUT_NAMES, OUTPUT_NAMES
from fleet.harness.tasks.squad_features import MAX_SEQ_LENGTH

MAX_POSITIONS = 512
TYPE_VOCAB = 2
LAYER_NORM_EPS = 1e-12


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    num_layers: int = 2
    hidden: int = 64
    heads: int = 2
    intermediate: int = 128
    word_scale: float = 1.0  # std of the word embeddings
    position_scale: float = 0.1
    question_attention: float = 3.0  # extra attention logit towards segment-0 tokens
    attention_scale: float = 3.0  # gain of the query/key projections (sharper attention)
    head_scale: float = 1.0  # std of the span head
    end_correlation: float = 0.7  # end head = this x start head + noise: short answers win
    seed: int = 0


def _layer_norm(g: GraphBuilder, x: str, hidden: int, rng: np.random.Generator) -> str:
    mean = g.op("ReduceMean", [x], axes=[-1])
    centred = g.op("Sub", [x, mean])
    var = g.op("ReduceMean", [g.op("Mul", [centred, centred])], axes=[-1])
    std = g.op("Sqrt", [g.op("Add", [var, g.const(np.array(LAYER_NORM_EPS, np.float32))])])
    gamma = (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(hidden)).astype(np.float32)
    return g.op(
        "Add", [g.op("Mul", [g.op("Div", [centred, std]), g.const(gamma, "ln_g")]), g.const(beta, "ln_b")]
    )


def _dense(
    g: GraphBuilder, x: str, n_in: int, n_out: int, rng: np.random.Generator, scale: float = 1.0
) -> str:
    w = (rng.standard_normal((n_in, n_out)) * scale / math.sqrt(n_in)).astype(np.float32)
    b = (0.02 * rng.standard_normal(n_out)).astype(np.float32)
    return g.op("Add", [g.op("MatMul", [x, g.const(w, "w")]), g.const(b, "b")])


def build_bert(config: BertConfig) -> onnx.ModelProto:
    """The synthetic model; deterministic for a given config."""
    cfg = config
    if cfg.hidden % cfg.heads:
        raise ValueError("hidden size must be a multiple of the number of heads")
    rng = np.random.default_rng(cfg.seed)
    g = GraphBuilder("synthetic_bert_squad")
    h, heads, dh = cfg.hidden, cfg.heads, cfg.hidden // cfg.heads
    ids, mask, segments = INPUT_NAMES

    words = g.op(
        "Gather",
        [
            g.const(
                (rng.standard_normal((cfg.vocab_size, h)) * cfg.word_scale).astype(np.float32), "word_emb"
            ),
            ids,
        ],
        axis=0,
    )
    positions = g.op(
        "Gather",
        [
            g.const(
                (rng.standard_normal((MAX_POSITIONS, h)) * cfg.position_scale).astype(np.float32), "pos_emb"
            ),
            g.const(np.arange(MAX_SEQ_LENGTH, dtype=np.int64), "position_ids"),
        ],
        axis=0,
    )
    types = g.op(
        "Gather",
        [g.const((rng.standard_normal((TYPE_VOCAB, h)) * 0.1).astype(np.float32), "type_emb"), segments],
        axis=0,
    )
    x = _layer_norm(g, g.op("Add", [g.op("Add", [words, positions]), types]), h, rng)

    # Additive attention bias [B,1,1,S]: -10000 on padding (as BERT), +question_attention on
    # the question tokens (segment 0 and not padding).
    mask_f = g.op("Cast", [mask], to=onnx.TensorProto.FLOAT)
    seg_f = g.op("Cast", [segments], to=onnx.TensorProto.FLOAT)
    one = g.const(np.array(1.0, np.float32))
    pad_bias = g.op("Mul", [g.op("Sub", [one, mask_f]), g.const(np.array(-10000.0, np.float32))])
    question = g.op("Mul", [mask_f, g.op("Sub", [one, seg_f])])
    bias = g.op(
        "Add", [pad_bias, g.op("Mul", [question, g.const(np.array(cfg.question_attention, np.float32))])]
    )
    bias = g.op("Unsqueeze", [bias, g.const(np.array([1, 2], np.int64))])

    split_heads = g.const(np.array([0, 0, heads, dh], np.int64))
    merge_heads = g.const(np.array([0, 0, h], np.int64))
    for _ in range(cfg.num_layers):

        def project(inp: str, scale: float = 1.0) -> str:
            return g.op(
                "Transpose",
                [g.op("Reshape", [_dense(g, inp, h, h, rng, scale), split_heads])],
                perm=[0, 2, 1, 3],
            )

        q, k, v = project(x, cfg.attention_scale), project(x, cfg.attention_scale), project(x)
        scores = g.op(
            "Div",
            [
                g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                g.const(np.array(math.sqrt(dh), np.float32)),
            ],
        )
        probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        context = g.op(
            "Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), merge_heads]
        )
        x = _layer_norm(g, g.op("Add", [x, _dense(g, context, h, h, rng)]), h, rng)
        inner = _dense(g, x, h, cfg.intermediate, rng)
        gelu = g.op(
            "Mul",
            [
                g.op("Mul", [inner, g.const(np.array(0.5, np.float32))]),
                g.op(
                    "Add",
                    [one, g.op("Erf", [g.op("Div", [inner, g.const(np.array(math.sqrt(2.0), np.float32))])])],
                ),
            ],
        )
        x = _layer_norm(g, g.op("Add", [x, _dense(g, gelu, cfg.intermediate, h, rng)]), h, rng)

    w_start = rng.standard_normal(h)
    w_end = cfg.end_correlation * w_start + math.sqrt(1 - cfg.end_correlation**2) * rng.standard_normal(h)
    w_span = (np.stack([w_start, w_end], axis=1) * cfg.head_scale).astype(np.float32)
    span = g.op(
        "Add", [g.op("MatMul", [x, g.const(w_span, "span_w")]), g.const(np.zeros(2, np.float32), "span_b")]
    )  # [B, S, 2]
    start, end = g.op("Split", [span], outputs=2, axis=2)
    squeeze_axis = g.const(np.array([2], np.int64))
    g.op("Squeeze", [start, squeeze_axis], outputs=[OUTPUT_NAMES[0]])
    g.op("Squeeze", [end, squeeze_axis], outputs=[OUTPUT_NAMES[1]])

    return g.model(
        [tensor(name, INT64, ["batch_size", MAX_SEQ_LENGTH]) for name in INPUT_NAMES],
        [tensor(name, FLOAT, ["batch_size", MAX_SEQ_LENGTH]) for name in OUTPUT_NAMES],
        producer="fleet.harness.synthetic.bert",
    )


def write_bert(path: Path, config: BertConfig) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_bert(config), str(path))
    return path
