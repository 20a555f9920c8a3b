"""A synthetic RetinaNet with the official ONNX contract, built with onnx.helper.

Same interface as `resnext50_32x4d_fpn.onnx`: input `images` float32 [1,3,800,800] (0..1 RGB),
outputs `boxes` float32 [K,4] (x1,y1,x2,y2 in 800x800 input pixels), `scores` float32 [K],
`labels` int64 [K] (category ids 0..263), sorted by descending score, K <= 300. Inside, the
graph does what the official one does after its backbone: ImageNet normalisation, P3-P7
feature levels (100, 50, 25, 13, 7 cells), 9 anchors per cell with torchvision's anchor
generator, per-level sigmoid scores and top-1000, box decoding and clipping, class-wise NMS
(IoU 0.5, score > 0.05, keep 300) with onnx TopK/NonMaxSuppression/Gather.

What is scaled down: the backbone is an 8x8 average pool plus a few small tanh convolutions
(16 channels), the classification and box heads are one 1x1 layer each, and by default they
run on P6-P7 only. The first convolution has zero-sum kernels and nothing before the head has
a bias, so a flat (one-colour) image gives exactly zero features and therefore no detection
at all; edges and colour changes are what the model "detects". A dense class head with a
strongly negative bias makes a class fire only where the features point its way: tens of
detections per image, with labels that change with the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from fleet.harness.synthetic.graph import FLOAT, INT64, GraphBuilder, tensor

IMAGE_SIZE = 800
NUM_CLASSES = 264
INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "labels")
SCORE_THRESH = 0.05
NMS_IOU = 0.5
DETECTIONS_PER_IMAGE = 300
TOPK_CANDIDATES = 1000
FEATURE_SIZES = (100, 50, 25, 13, 7)  # P3..P7 on an 800x800 input
ANCHOR_BASES = (32, 64, 128, 256, 512)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class RetinaNetConfig:
    channels: int = 16
    # Dense class-head weights with a strongly negative bias (torchvision's prior-probability
    # bias with random weights fires the same few classes everywhere, or everything).
    cls_scale: float = 1.2
    cls_bias: float = -11.5
    box_scale: float = 0.1  # std of the box-head weights (how far boxes move off their anchors)
    # Levels the head runs on (P3=3 .. P7=7). The dense head costs cells x 9 x 264 x channels
    # and a top-k over cells x 9 x 264 logits; on P3-P5 that is nearly all of the model's
    # time, so by default it runs on P6-P7 and one image takes a few milliseconds (Server's
    # 100 ms bound and MultiStream's 5296-sample smoke run stay cheap on a shared 2-core node).
    head_levels: tuple[int, ...] = (6, 7)
    seed: int = 0


def anchor_sizes() -> list[tuple[int, int, int]]:
    """Anchor sizes per level exactly as the MLPerf model builds them (ints)."""
    return [(x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in ANCHOR_BASES]


def level_anchors(size: int, sizes: tuple[int, ...]) -> np.ndarray:
    """torchvision AnchorGenerator for one level: [size*size*9, 4], cell-major, anchor-minor."""
    scales = np.asarray(sizes, dtype=np.float32)
    ratios = np.asarray(ASPECT_RATIOS, dtype=np.float32)
    h_ratios = np.sqrt(ratios)
    w_ratios = 1.0 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    base = np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2.0)
    stride = IMAGE_SIZE // size
    shifts = np.arange(size, dtype=np.float32) * stride
    shift_y, shift_x = np.meshgrid(shifts, shifts, indexing="ij")
    sx, sy = shift_x.reshape(-1), shift_y.reshape(-1)
    grid = np.stack([sx, sy, sx, sy], axis=1)
    return (grid[:, None, :] + base[None, :, :]).reshape(-1, 4).astype(np.float32)


def _conv_weights(rng: np.random.Generator, out_c: int, in_c: int, k: int, std: float) -> np.ndarray:
    return (rng.standard_normal((out_c, in_c, k, k)) * std).astype(np.float32)


def build_retinanet(config: RetinaNetConfig | None = None) -> onnx.ModelProto:
    """The synthetic model; deterministic for a given config."""
    cfg = config or RetinaNetConfig()
    rng = np.random.default_rng(cfg.seed)
    g = GraphBuilder("synthetic_retinanet")
    c = cfg.channels
    num_anchors = len(ASPECT_RATIOS) * 3

    # Normalisation commutes with average pooling: pool first, normalise 64x fewer values.
    x = g.op("AveragePool", [INPUT_NAME], kernel_shape=[8, 8], strides=[8, 8])  # [1,3,100,100]
    x = g.op("Sub", [x, g.const(np.array(MEAN, np.float32).reshape(1, 3, 1, 1), "mean")])
    x = g.op("Div", [x, g.const(np.array(STD, np.float32).reshape(1, 3, 1, 1), "std")])

    def conv3(inp: str, w: np.ndarray, stride: int = 1) -> str:
        padded = g.op(
            "Pad", [inp, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")], mode="edge"
        )
        return g.op("Tanh", [g.op("Conv", [padded, g.const(w, "w")], strides=[stride, stride])])

    w1 = _conv_weights(rng, c, 3, 3, 1.0)
    w1 -= w1.mean(axis=(2, 3), keepdims=True)  # zero-sum: flat input -> zero features
    feat = conv3(x, w1)
    feat = conv3(feat, _conv_weights(rng, c, c, 3, 1.0 / math.sqrt(9 * c)))
    levels = [feat]
    for _ in FEATURE_SIZES[1:]:
        levels.append(conv3(levels[-1], _conv_weights(rng, c, c, 3, 1.5 / math.sqrt(9 * c)), stride=2))

    # The 1x1-convolution heads as MatMuls on [H*W, C] features: the logits come out in
    # torchvision's (H, W, A, K) flattening order without transposing the big tensor.
    cls_w = g.const(
        (rng.standard_normal((c, num_anchors * NUM_CLASSES)) * cfg.cls_scale).astype(np.float32), "cls_w"
    )
    cls_b = g.const(np.full(num_anchors * NUM_CLASSES, cfg.cls_bias, np.float32), "cls_b")
    box_w = g.const((rng.standard_normal((c, num_anchors * 4)) * cfg.box_scale).astype(np.float32), "box_w")

    all_boxes, all_scores, all_labels = [], [], []
    for level, (size, sizes) in enumerate(zip(FEATURE_SIZES, anchor_sizes(), strict=True)):
        if level + 3 not in cfg.head_levels:
            continue
        cells = size * size * num_anchors
        cell_feats = g.op("Reshape", [levels[level], g.const(np.array([c, size * size], np.int64))])
        cell_feats = g.op("Transpose", [cell_feats], perm=[1, 0])  # [H*W, C]
        logits = g.op("Add", [g.op("MatMul", [cell_feats, cls_w]), cls_b])  # [H*W, A*K]
        logits = g.op("Reshape", [logits, g.const(np.array([-1], np.int64))])
        deltas = g.op("Reshape", [g.op("MatMul", [cell_feats, box_w]), g.const(np.array([-1, 4], np.int64))])

        k = min(TOPK_CANDIDATES, cells * NUM_CLASSES)
        top_logits, top_idx = g.op("TopK", [logits, g.const(np.array([k], np.int64))], outputs=2)
        all_scores.append(g.op("Sigmoid", [top_logits]))
        num_classes = g.const(np.array(NUM_CLASSES, np.int64))
        anchor_idx = g.op("Div", [top_idx, num_classes])
        all_labels.append(g.op("Mod", [top_idx, num_classes]))
        anchors = g.op("Gather", [g.const(level_anchors(size, sizes), "anchors"), anchor_idx], axis=0)
        rel = g.op("Gather", [deltas, anchor_idx], axis=0)
        all_boxes.append(_decode(g, anchors, rel))

    boxes = g.op("Concat", all_boxes, axis=0)
    scores = g.op("Concat", all_scores, axis=0)
    labels = g.op("Concat", all_labels, axis=0)

    # Class-wise NMS in one call: shift each class's boxes apart (torchvision's batched_nms).
    offsets = g.op(
        "Mul",
        [g.op("Cast", [labels], to=onnx.TensorProto.FLOAT), g.const(np.array(IMAGE_SIZE + 1, np.float32))],
    )
    shifted = g.op("Add", [boxes, g.op("Unsqueeze", [offsets, g.const(np.array([1], np.int64))])])
    selected = g.op(
        "NonMaxSuppression",
        [
            g.op("Unsqueeze", [shifted, g.const(np.array([0], np.int64))]),
            g.op("Unsqueeze", [scores, g.const(np.array([0, 1], np.int64))]),
            g.const(np.array([DETECTIONS_PER_IMAGE], np.int64)),
            g.const(np.array([NMS_IOU], np.float32)),
            g.const(np.array([SCORE_THRESH], np.float32)),
        ],
    )
    keep = g.op("Gather", [selected, g.const(np.array(2, np.int64))], axis=1)
    kept_scores = g.op("Gather", [scores, keep], axis=0)
    count = g.op("Shape", [kept_scores])
    sorted_scores, order = g.op("TopK", [kept_scores, count], outputs=2)
    keep = g.op("Gather", [keep, order], axis=0)
    g.op("Gather", [boxes, keep], outputs=["boxes"], axis=0)
    g.op("Identity", [sorted_scores], outputs=["scores"])
    g.op("Gather", [labels, keep], outputs=["labels"], axis=0)

    return g.model(
        [tensor(INPUT_NAME, FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [
            tensor("boxes", FLOAT, ["num_detections", 4]),
            tensor("scores", FLOAT, ["num_detections"]),
            tensor("labels", INT64, ["num_detections"]),
        ],
        producer="fleet.harness.synthetic.retinanet",
    )


def _decode(g: GraphBuilder, anchors: str, rel: str) -> str:
    """torchvision BoxCoder.decode_single (weights 1,1,1,1) followed by clipping to the image."""

    def col(t: str, i: int) -> str:
        return g.op(
            "Slice",
            [
                t,
                g.const(np.array([i], np.int64)),
                g.const(np.array([i + 1], np.int64)),
                g.const(np.array([1], np.int64)),
            ],
        )

    half = g.const(np.array(0.5, np.float32))
    x1, y1, x2, y2 = (col(anchors, i) for i in range(4))
    widths = g.op("Sub", [x2, x1])
    heights = g.op("Sub", [y2, y1])
    ctr_x = g.op("Add", [x1, g.op("Mul", [half, widths])])
    ctr_y = g.op("Add", [y1, g.op("Mul", [half, heights])])
    clip = g.const(np.array(BBOX_XFORM_CLIP, np.float32))
    dx, dy = col(rel, 0), col(rel, 1)
    dw = g.op("Min", [col(rel, 2), clip])
    dh = g.op("Min", [col(rel, 3), clip])
    pred_ctr_x = g.op("Add", [g.op("Mul", [dx, widths]), ctr_x])
    pred_ctr_y = g.op("Add", [g.op("Mul", [dy, heights]), ctr_y])
    half_w = g.op("Mul", [half, g.op("Mul", [g.op("Exp", [dw]), widths])])
    half_h = g.op("Mul", [half, g.op("Mul", [g.op("Exp", [dh]), heights])])
    corners = [
        g.op("Sub", [pred_ctr_x, half_w]),
        g.op("Sub", [pred_ctr_y, half_h]),
        g.op("Add", [pred_ctr_x, half_w]),
        g.op("Add", [pred_ctr_y, half_h]),
    ]
    boxes = g.op("Concat", corners, axis=1)
    return g.op(
        "Clip", [boxes, g.const(np.array(0.0, np.float32)), g.const(np.array(IMAGE_SIZE, np.float32))]
    )


def write_retinanet(path: Path, config: RetinaNetConfig | None = None) -> Path:
    """Build and save the model; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build_retinanet(config), str(path))
    return path
