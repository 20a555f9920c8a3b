"""A reduced 3D-UNet with the official KiTS19 ONNX contract, built with onnx.helper.

Same interface as `3dunet_kits19_128x128x128.onnx`: input `input` float32 [1,1,128,128,128]
(one preprocessed window), output `output` float32 [1,3,128,128,128] (raw logits for
background, kidney, tumor; no softmax). Same topology as the reference `Unet3D`: an input
block of two (Conv3d k3 p1 no bias -> InstanceNorm3d affine -> ReLU), four down blocks whose
first conv has stride 2, a bottleneck down block, five up blocks (ConvTranspose3d k2 s2 with
bias -> concat with the skip -> two conv blocks), and a 1x1x1 output conv with bias.

What is scaled down: the filters ([32, 64, 128, 256, 320] in the reference, hundreds of
GFLOPs per window) are a few channels, so one window takes a fraction of a second on two
cores. Weights are random, except the output head, fitted to one probe window's features so
that each class covers a useful share of the volume (see `fit_head`); the last block has no
ReLU so the head has continuous features to split. Instance norm makes every window's output
depend on the whole window, so windows that overlap disagree where they overlap and the
Gaussian blending matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from fleet.harness.synthetic.graph import FLOAT, GraphBuilder, tensor

ROI = 128
INPUT_NAME = "input"
OUTPUT_NAME = "output"
CLASSES = 3
# Share of voxels the balanced output gives background, kidney, tumor.
CLASS_SHARES = (0.6, 0.25, 0.15)


@dataclass(frozen=True)
class UNet3DConfig:
    filters: tuple[int, ...] = (4, 8, 8, 8, 8)  # five levels, like the reference's five widths
    seed: int = 0


def _conv_block(g: GraphBuilder, rng: np.random.Generator, x: str, cin: int, cout: int,
                stride: int = 1, relu: bool = True) -> str:
    """Conv3d k3 p1 (no bias) -> InstanceNorm (affine) -> ReLU (unless relu=False)."""
    weight = rng.normal(0.0, np.sqrt(2.0 / (cin * 27)), size=(cout, cin, 3, 3, 3)).astype(np.float32)
    y = g.op("Conv", [x, g.const(weight, "w")], kernel_shape=[3, 3, 3], pads=[1] * 6,
             strides=[stride] * 3)
    scale = rng.uniform(0.5, 1.5, size=cout).astype(np.float32)
    bias = rng.normal(0.0, 0.3, size=cout).astype(np.float32)
    y = g.op("InstanceNormalization", [y, g.const(scale, "gamma"), g.const(bias, "beta")], epsilon=1e-5)
    return g.op("Relu", [y]) if relu else y


def build_unet3d(config: UNet3DConfig, head: tuple[np.ndarray, np.ndarray] | None = None) -> onnx.ModelProto:
    """The reduced network with output head (weights (3, C), biases (3,)), see `fit_head`.

    Without a head, `output` is the last block's C feature channels (the probe `fit_head`
    reads); the layers before it are the same for a seed either way.
    """
    rng = np.random.default_rng(config.seed)
    f = list(config.filters)
    g = GraphBuilder("unet3d_kits19_synthetic")
    x = _conv_block(g, rng, INPUT_NAME, 1, f[0])
    x = _conv_block(g, rng, x, f[0], f[0])
    skips = [(x, f[0])]
    widths = [*f[1:], f[-1]]  # four down blocks, then the bottleneck at the last width
    cin = f[0]
    for cout in widths:
        x = _conv_block(g, rng, x, cin, cout, stride=2)
        x = _conv_block(g, rng, x, cout, cout)
        skips.append((x, cout))
        cin = cout
    skips.pop()  # the bottleneck is not a skip
    for level, (skip, width) in enumerate(reversed(skips)):
        weight = rng.normal(0.0, np.sqrt(1.0 / (cin * 8)), size=(cin, width, 2, 2, 2)).astype(np.float32)
        bias = rng.normal(0.0, 0.1, size=width).astype(np.float32)
        x = g.op("ConvTranspose", [x, g.const(weight, "wt"), g.const(bias, "bt")],
                 kernel_shape=[2, 2, 2], strides=[2, 2, 2])
        x = g.op("Concat", [x, skip], axis=1)
        x = _conv_block(g, rng, x, 2 * width, width)
        # The last block's features go to the head without a ReLU: half of each channel would
        # be exactly 0, and the head could not split that mass between the classes.
        x = _conv_block(g, rng, x, width, width, relu=level < len(skips) - 1)
        cin = width
    channels = CLASSES
    if head is None:
        g.op("Identity", [x], [OUTPUT_NAME])
        channels = cin
    else:
        weight = np.asarray(head[0], np.float32).reshape(CLASSES, cin, 1, 1, 1)
        bias = np.asarray(head[1], np.float32)
        g.op("Conv", [x, g.const(weight, "wout"), g.const(bias, "bout")], [OUTPUT_NAME],
             kernel_shape=[1, 1, 1])
    return g.model([tensor(INPUT_NAME, FLOAT, [1, 1, ROI, ROI, ROI])],
                   [tensor(OUTPUT_NAME, FLOAT, [1, channels, ROI, ROI, ROI])],
                   producer="fleet.harness.synthetic.unet3d")


def fit_head(features: np.ndarray, shares: tuple[float, ...] = CLASS_SHARES,
             rounds: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Output weights and biases under which each class covers about its share of a window.

    Random output weights give logits so alike that one class wins almost everywhere, and a
    teacher that labels every voxel background lets anything score DICE ~1. Here background
    is the constant 0, and kidney and tumor are the two leading principal components of the
    features (uncorrelated, unit variance) minus thresholds, fitted to the shares.
    """
    flat = features.reshape(features.shape[0], -1).astype(np.float64)
    mean = flat.mean(axis=1)
    values, vectors = np.linalg.eigh(np.cov(flat))
    order = np.argsort(values)[::-1][:2]
    proj = vectors[:, order].T / np.sqrt(np.maximum(values[order], 1e-12))[:, None]  # (2, C)
    scores = proj @ (flat - mean[:, None])
    thresholds = np.zeros(2)
    for _ in range(rounds):
        kidney, tumor = scores[0] - thresholds[0], scores[1] - thresholds[1]
        got = np.array([np.mean((kidney > 0) & (kidney >= tumor)), np.mean((tumor > 0) & (tumor > kidney))])
        thresholds += 0.5 * (np.log(np.maximum(got, 1e-4)) - np.log(np.asarray(shares[1:])))
    weights = np.vstack([np.zeros(flat.shape[0]), proj])
    biases = np.concatenate([[0.0], -(proj @ mean) - thresholds])
    return weights.astype(np.float32), biases.astype(np.float32)
