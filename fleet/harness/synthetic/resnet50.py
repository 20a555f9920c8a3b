"""A ResNet50 v1.5 ONNX with the official names and shapes and random weights.

Built node by node with onnx.helper and numpy (no torch, no downloads), so any node with the
`node` extra can make it. The graph is the real topology: 7x7/2 stem, 3x3/2 max pool,
bottleneck stages of 3, 4, 6, 3 blocks with the stride on the 3x3 convolution (v1.5),
global average pool and a 1001-way classifier (index 0 = background), emitting
`softmax_tensor:0` float32 [N,1001] and `ArgMax:0` int64 [N] from `input_tensor:0` float32
[N,3,224,224]. Batch norm is folded into the convolutions, as in an inference export.

The `small` variant keeps that topology, names, shapes and dtypes with 1/16 of the
channels: fleet-level tests run many nodes on two cores, where the full model (~15
samples/s) cannot meet the 15 ms Server bound.

Random weights alone give a classifier that sends every image to one or two classes, so the
classifier is fitted to the backbone: it whitens the pooled features along their main
directions (measured on a fixed calibration set of synthetic images) and projects them on
random class directions, which spreads the argmax over many classes. See imagenet.py for how
the dataset is labelled with this model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

INPUT_NAME = "input_tensor:0"
ARGMAX_NAME = "ArgMax:0"
SOFTMAX_NAME = "softmax_tensor:0"
NUM_CLASSES = 1001
FEATURES_NAME = "fleet_features"
STAGES = (3, 4, 6, 3)
# variant -> base width (the official model: 64).
VARIANTS = {"full": 64, "small": 4}
OPSET = 13
# Logit spread of the fitted classifier: wide enough that the top-1 margin dwarfs float noise.
LOGIT_STD = 4.0
# How many principal directions of the pooled features the classifier looks at.
CLASSIFIER_DIMS = 32


@dataclass
class _Graph:
    nodes: list
    inits: list
    count: int = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array: np.ndarray, hint: str) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        from onnx import helper

        out = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out


def _conv(g: _Graph, rng: np.random.Generator, x: str, cin: int, cout: int, k: int, stride: int,
          relu: bool, gain: float = 1.0) -> str:
    """Conv + folded batch norm (+ ReLU), He-initialised so activations keep their scale."""
    std = gain * np.sqrt(2.0 / (cin * k * k))
    w = (rng.standard_normal((cout, cin, k, k), dtype=np.float32) * np.float32(std)).astype(np.float32)
    b = (rng.standard_normal(cout, dtype=np.float32) * np.float32(0.05 * gain)).astype(np.float32)
    y = g.op("Conv", [x, g.const(w, "conv_w"), g.const(b, "conv_b")], kernel_shape=[k, k],
             strides=[stride, stride], pads=[k // 2] * 4)
    return g.op("Relu", [y]) if relu else y


def _bottleneck(g: _Graph, rng: np.random.Generator, x: str, cin: int, width: int, stride: int) -> str:
    cout = width * 4
    y = _conv(g, rng, x, cin, width, 1, 1, relu=True)
    y = _conv(g, rng, y, width, width, 3, stride, relu=True)  # v1.5: stride on the 3x3
    # Down-weight the residual branch so 16 blocks of additions keep a stable scale.
    y = _conv(g, rng, y, width, cout, 1, 1, relu=False, gain=0.3)
    shortcut = x if (cin == cout and stride == 1) else _conv(g, rng, x, cin, cout, 1, stride, relu=False)
    return g.op("Relu", [g.op("Add", [y, shortcut])])


def _backbone(g: _Graph, rng: np.random.Generator, base: int) -> tuple[str, int]:
    """Stem and the four stages; returns the pooled [N, C] feature tensor and C."""
    x = _conv(g, rng, INPUT_NAME, 3, base, 7, 2, relu=True)
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = base
    for stage, blocks in enumerate(STAGES):
        width = base * 2**stage
        for block in range(blocks):
            stride = 2 if (stage > 0 and block == 0) else 1
            x = _bottleneck(g, rng, x, cin, width, stride)
            cin = width * 4
    pooled = g.op("GlobalAveragePool", [x])
    return g.op("Flatten", [pooled], output=FEATURES_NAME, axis=1), cin


def _model(g: _Graph, outputs: list, metadata: dict[str, str]):
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, 224, 224])
    graph = helper.make_graph(g.nodes, "resnet50_v1_synthetic", [inp], outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fleet.harness.synthetic")
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def build(seed: int, variant: str,
          features_of: Callable[[bytes], np.ndarray]) -> bytes:
    """Serialized ONNX model. `features_of(backbone_onnx_bytes)` returns calibration features.

    The caller runs the backbone-only model on calibration images (through the reference
    preprocessing) and hands back their pooled features [M, C]; the classifier is fitted to
    them. Deterministic for a given (seed, variant, calibration features).
    """
    from onnx import TensorProto, helper

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    rng = np.random.default_rng(seed)
    g = _Graph([], [])
    features, dim = _backbone(g, rng, VARIANTS[variant])
    meta = {"fleet_synthetic": "true", "seed": str(seed), "variant": variant}

    feat_out = helper.make_tensor_value_info(FEATURES_NAME, TensorProto.FLOAT, ["N", dim])
    backbone = _model(g, [feat_out], meta).SerializeToString()
    calib = np.asarray(features_of(backbone), dtype=np.float64)

    weight, bias = _fit_classifier(calib, np.random.default_rng([seed, 1]))
    logits = g.op("Gemm", [features, g.const(weight, "fc_w"), g.const(bias, "fc_b")], transB=1)
    g.op("Softmax", [logits], output=SOFTMAX_NAME, axis=1)
    g.op("ArgMax", [logits], output=ARGMAX_NAME, axis=1, keepdims=0)
    outputs = [
        helper.make_tensor_value_info(ARGMAX_NAME, TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info(SOFTMAX_NAME, TensorProto.FLOAT, ["N", NUM_CLASSES]),
    ]
    return _model(g, outputs, meta).SerializeToString()


def _fit_classifier(calib: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gemm weight [1001, C] and bias: whiten the main feature directions, project on random classes."""
    mean = calib.mean(axis=0)
    centered = calib - mean
    _, sing, vt = np.linalg.svd(centered, full_matrices=False)
    k = int(min(CLASSIFIER_DIMS, max(1, np.sum(sing > sing[0] * 1e-4))))
    scale = sing[:k] / np.sqrt(max(len(calib) - 1, 1))  # std along each direction
    whiten = vt[:k] / scale[:, None]  # [k, C]
    classes = rng.standard_normal((NUM_CLASSES, k)) * (LOGIT_STD / np.sqrt(k))
    weight = classes @ whiten  # [1001, C]
    bias = -weight @ mean
    return weight.astype(np.float32), bias.astype(np.float32)
