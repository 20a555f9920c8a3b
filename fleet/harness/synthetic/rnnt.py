"""A synthetic RNN-T: the reference's module structure and checkpoint layout, random weights.

The checkpoint is what the official one is: `{"state_dict": ...}` with the training code's key
names (`joint_net.*`, and the featurizer's `fb` and `window` buffers that the loader drops),
so the synthetic model exercises the same loader and migration as `rnnt.pt`. Sizes: `full` is
the reference's (1024 hidden, 320 prediction, 512 joint; about 45 M parameters); `small` keeps
every layer count and shrinks the widths for tests.

The encoder and prediction networks keep random weights (the LSTMs' scaled up so the encoder
output follows the audio). A joint with random weights decodes nothing (blank always wins) or
one symbol 30 times a frame, so the joint is fitted, like the 3D-UNet's head, to behave as a
transducer: symbol j's logit is a random, standardised projection of the encoder frame minus
a penalty when j is among the last two emitted symbols (a least-squares readout of the
prediction state), passed exactly through the ReLU as relu(x) - relu(-x); the blank's logit is
a constant. Bisection then sets the blank bias for about `EMIT_SHARE` symbols per encoder frame
and the space's for one symbol in `WORD_LENGTH`: several words per utterance, of differing
lengths and characters, that change with the audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fleet.harness.tasks.rnnt_features import FeatureExtractor, FeatureParams, mel_filters
from fleet.harness.tasks.rnnt_model import BLANK, RNNT, GreedyDecoder

EMIT_SHARE = 0.6  # symbols per encoder frame
WORD_LENGTH = 5.0  # symbols per space
LSTM_GAIN = 5.0
REPEAT_PENALTY = 3.0  # logit penalty on the last emitted symbol (0.8 of it on the one before)
BIAS_RANGE = 30.0
BISECTIONS = 10
FIT_ROUNDS = 1


@dataclass(frozen=True)
class RnntSize:
    hidden: int
    pred_hidden: int
    joint_hidden: int
    pre_layers: int = 2
    post_layers: int = 3
    pred_layers: int = 2
    factor: int = 2


SIZES = {"full": RnntSize(1024, 320, 512), "small": RnntSize(64, 64, 64)}


def build_rnnt(size: RnntSize, seed: int) -> RNNT:
    """Random weights; the LSTMs' scaled so that the encoder's output follows the audio.

    At PyTorch's default initialisation every LSTM layer shrinks its input, and five layers on,
    the encoder's output barely moves from frame to frame.
    """
    torch.manual_seed(seed)
    model = RNNT(features=FeatureParams().features, hidden=size.hidden, pre_layers=size.pre_layers,
                 post_layers=size.post_layers, factor=size.factor, pred_hidden=size.pred_hidden,
                 pred_layers=size.pred_layers, joint_hidden=size.joint_hidden)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("encoder.") and ".lstm.weight" in name:
                param.mul_(LSTM_GAIN)
    return model.eval()


def _prediction_readout(model: RNNT, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(G, c): G @ g + c ~ -penalty on the last two symbols, fitted over random label sequences."""
    rows, targets = [], []
    with torch.inference_mode():
        for _ in range(64):
            labels = rng.integers(0, BLANK, 12)
            g, state = model.prediction(None)
            for i, k in enumerate(labels):
                g, state = model.prediction(torch.tensor([[int(k)]]), state)
                target = np.zeros(BLANK)
                target[k] -= REPEAT_PENALTY
                if i and labels[i - 1] != k:
                    target[labels[i - 1]] -= 0.8 * REPEAT_PENALTY
                rows.append(g[0, 0].numpy().copy())
                targets.append(target)
    x = np.hstack([np.asarray(rows, np.float64), np.ones((len(rows), 1))])
    solution = np.linalg.lstsq(x, np.asarray(targets), rcond=None)[0]
    return solution[:-1].T, solution[-1]


def _encode(model: RNNT, waveforms: Sequence[np.ndarray]) -> list[tuple[torch.Tensor, int]]:
    features = FeatureExtractor()
    with torch.inference_mode():
        out = []
        for w in waveforms:
            enc, lens = model.encoder(*features(w))
            out.append((enc[0].clone(), int(lens[0])))
    return out


def fit_joint(model: RNNT, waveforms: Sequence[np.ndarray], seed: int) -> None:
    """The transducer-like joint described in the module docstring, fitted on probe audio."""
    rng = np.random.default_rng(seed + 11)
    encoded = _encode(model, waveforms)
    frames = torch.cat([enc[:length] for enc, length in encoded]).numpy().astype(np.float64)
    proj = rng.normal(size=(BLANK, frames.shape[1]))
    drive = frames @ proj.T
    proj /= drive.std(axis=0)[:, None]
    offset = -(frames @ proj.T).mean(axis=0)
    readout, readout_bias = _prediction_readout(model, rng)
    first, last = model.joint.net[0], model.joint.net[3]
    hidden = first.weight.shape[1] - readout.shape[1]
    if first.weight.shape[0] < 2 * BLANK:
        raise ValueError(f"the joint needs at least {2 * BLANK} hidden units")
    w1 = np.zeros(first.weight.shape)
    b1 = np.zeros(first.weight.shape[0])
    w1[:BLANK, :hidden], w1[:BLANK, hidden:], b1[:BLANK] = proj, readout, offset + readout_bias
    w1[BLANK : 2 * BLANK], b1[BLANK : 2 * BLANK] = -w1[:BLANK], -b1[:BLANK]
    w2 = np.zeros(last.weight.shape)
    w2[np.arange(BLANK), np.arange(BLANK)] = 1.0
    w2[np.arange(BLANK), BLANK + np.arange(BLANK)] = -1.0
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(w1))
        first.bias.copy_(torch.from_numpy(b1))
        last.weight.copy_(torch.from_numpy(w2))
        last.bias.zero_()
    _fit_biases(model, encoded)


def _decode_stats(model: RNNT, encoded: Sequence[tuple[torch.Tensor, int]]) -> tuple[float, float]:
    """(symbols per encoder frame, share of spaces among symbols) over encoded utterances."""
    decoder = GreedyDecoder(model.encoder, model.prediction, model.joint)
    symbols = spaces = frames = 0
    for enc, length in encoded:
        labels = decoder.decode_encoded(enc, length)
        symbols += len(labels)
        spaces += labels.count(0)
        frames += length
    return symbols / frames, spaces / max(1, symbols)


def _bisect(set_bias: Callable[[float], float], target: float, increasing: bool) -> None:
    """Find the bias at which set_bias(bias), a monotone measure, crosses `target`."""
    low, high = -BIAS_RANGE, BIAS_RANGE
    for _ in range(BISECTIONS):
        mid = (low + high) / 2
        if (set_bias(mid) > target) == increasing:
            high = mid
        else:
            low = mid
    set_bias((low + high) / 2)


def _fit_biases(model: RNNT, encoded: Sequence[tuple[torch.Tensor, int]]) -> None:
    bias = model.joint.net[3].bias

    def set_blank(value: float) -> float:
        with torch.no_grad():
            bias[BLANK] = value
        return _decode_stats(model, encoded)[0]

    def set_space(value: float) -> float:
        with torch.no_grad():
            bias[0] = value
        return _decode_stats(model, encoded)[1]

    for _ in range(FIT_ROUNDS):
        _bisect(set_blank, EMIT_SHARE, increasing=False)
        _bisect(set_space, 1.0 / WORD_LENGTH, increasing=True)


def reference_checkpoint(model: RNNT) -> dict[str, dict[str, torch.Tensor]]:
    """The model's weights in the official checkpoint's layout (training code's key names)."""
    params = FeatureParams()
    state = {k.replace("joint.net", "joint_net"): v.detach().clone() for k, v in model.state_dict().items()}
    state["audio_preprocessor.featurizer.fb"] = torch.from_numpy(
        mel_filters(params.sample_rate, params.n_fft, params.n_mels)).unsqueeze(0)
    state["audio_preprocessor.featurizer.window"] = torch.hann_window(params.win_length, periodic=False)
    return {"state_dict": state}
