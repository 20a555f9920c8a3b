"""The reference RNN-T network (`model_separable_rnnt.RNNT`) and its greedy decoder, in PyTorch.

The architecture is read off the checkpoint's weight shapes, so the official 45 M-parameter
`rnnt.pt` and a reduced synthetic one load through the same code:

- encoder: `pre_rnn` LSTM (240 -> H, L1 layers), StackTime x2 (pad T to even, concatenate
  adjacent frames, lengths ceil(len/2)), `post_rnn` LSTM (2H -> H, L2 layers);
- prediction: Embedding(28, P) (blank is not embedded; start-of-sequence is a zero vector),
  LSTM (P -> P);
- joint: concat [encoder, prediction] -> Linear -> ReLU -> Dropout (inert) -> Linear(29).

Checkpoint: `torch.load(path)["state_dict"]` with the reference's migration: `joint_net` keys
become `joint.net`, and the featurizer's `fb`/`window` buffers are dropped (features are
computed in rnnt_features.py). Loaded weights-only: a checkpoint is data, never code.

`GreedyDecoder` is `ScriptGreedyDecoder`: per encoder frame, up to 30 symbols; the prediction
state advances only when a non-blank symbol is emitted. One saving over the reference, which
recomputes the prediction network after every blank from the same label and state (so the
same output): here it is computed once per emitted symbol (the labels are the same, and a
frame that emits nothing costs one joint step instead of a joint and a prediction step).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fleet.harness.errors import HarnessError, one_line
from fleet.harness.tasks.librispeech import LABELS

BLANK = len(LABELS)  # the blank is the 29th class
MAX_SYMBOLS_PER_STEP = 30
DROPPED_KEYS = ("audio_preprocessor.featurizer.fb", "audio_preprocessor.featurizer.window")


class Lstm(nn.Module):
    """The reference's LstmDrop: the LSTM under `.lstm` (its state-dict prefix); dropout inert."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> Any:
        return self.lstm(x, state)


def stack_time(x: torch.Tensor, lens: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, B, H) -> (ceil(T/f), B, f*H): zero-pad T to a multiple of f, join adjacent frames."""
    r = x.transpose(0, 1)
    pad = (-r.shape[1]) % factor
    if pad:
        r = torch.cat([r, r.new_zeros(r.shape[0], pad, r.shape[2])], 1)
    r = r.reshape(r.shape[0], r.shape[1] // factor, r.shape[2] * factor)
    return r.transpose(0, 1), torch.ceil(lens.float() / factor).int()


class Encoder(nn.Module):
    def __init__(self, features: int, hidden: int, pre_layers: int, post_layers: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.pre_rnn = Lstm(features, hidden, pre_layers)
        self.post_rnn = Lstm(factor * hidden, hidden, post_layers)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, B, F), (B,) -> (B, T', H), (B,)."""
        x, _ = self.pre_rnn(x)
        x, lens = stack_time(x, lens, self.factor)
        x, _ = self.post_rnn(x)
        return x.transpose(0, 1), lens


class Prediction(nn.Module):
    def __init__(self, classes: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(classes - 1, hidden)
        self.dec_rnn = Lstm(hidden, hidden, layers)

    def forward(self, label: torch.Tensor | None, state: Any = None) -> tuple[torch.Tensor, Any]:
        """label (B, 1) int64 or None (start of sequence: a zero input) -> (B, 1, P), state."""
        if label is None:
            y = torch.zeros((1, 1, self.hidden), dtype=torch.float32, device=self.embed.weight.device)
        else:
            y = self.embed(label)
        g, state = self.dec_rnn(y.transpose(0, 1), state)
        return g.transpose(0, 1), state


class Joint(nn.Module):
    def __init__(self, classes: int, encoder: int, prediction: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(encoder + prediction, hidden), nn.ReLU(), nn.Dropout(0.32),
                                 nn.Linear(hidden, classes))

    def forward(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """f (B, T, H), g (B, U, P) -> logits (B, T, U, classes)."""
        b, t, h = f.shape
        _, u, p = g.shape
        both = torch.cat([f.unsqueeze(2).expand(b, t, u, h), g.unsqueeze(1).expand(b, t, u, p)], dim=3)
        return self.net(both)


class RNNT(nn.Module):
    def __init__(self, features: int, hidden: int, pre_layers: int, post_layers: int, factor: int,
                 pred_hidden: int, pred_layers: int, joint_hidden: int, classes: int = BLANK + 1) -> None:
        super().__init__()
        self.encoder = Encoder(features, hidden, pre_layers, post_layers, factor)
        self.prediction = Prediction(classes, pred_hidden, pred_layers)
        self.joint = Joint(classes, hidden, pred_hidden, joint_hidden)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x, lens)


def _layers(state: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"\.weight_ih_l(\d+)")
    return len({m.group(1) for k in state if (m := pattern.fullmatch(k))})


def architecture(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """RNNT's constructor arguments from the (migrated) state dict's shapes."""
    pre, post = "encoder.pre_rnn.lstm", "encoder.post_rnn.lstm"
    hidden = state[f"{pre}.weight_hh_l0"].shape[1]
    return {
        "features": state[f"{pre}.weight_ih_l0"].shape[1],
        "hidden": hidden,
        "pre_layers": _layers(state, pre),
        "post_layers": _layers(state, post),
        "factor": state[f"{post}.weight_ih_l0"].shape[1] // hidden,
        "pred_hidden": state["prediction.embed.weight"].shape[1],
        "pred_layers": _layers(state, "prediction.dec_rnn.lstm"),
        "joint_hidden": state["joint.net.0.weight"].shape[0],
        "classes": state["joint.net.3.weight"].shape[0],
    }


def migrate(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's load_and_migrate_checkpoint on a loaded state dict."""
    out = {k.replace("joint_net", "joint.net"): v for k, v in state.items()}
    for key in DROPPED_KEYS:
        out.pop(key, None)
    return out


def load_rnnt(path: Path) -> RNNT:
    """The network from a reference-format checkpoint; HarnessError naming the file if it is not one."""
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
        state = migrate(checkpoint["state_dict"])
        arch = architecture(state)
    except Exception as exc:  # unpickling errors, a missing key, not a dict
        raise HarnessError(f"model {path} is not an RNN-T checkpoint in the reference's format "
                           f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]})") from None
    if arch["classes"] != BLANK + 1:
        raise HarnessError(f"model {path} has {arch['classes']} output classes; "
                           f"RNN-T's vocabulary has {BLANK + 1}")
    model = RNNT(**arch)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise HarnessError(f"model {path} does not fit the RNN-T architecture: "
                           f"{one_line(exc, 300)}") from None
    return model.eval()


class GreedyDecoder:
    """ScriptGreedyDecoder over the model's parts (called as given: plain modules or backend programs)."""

    def __init__(self, encoder: Callable[..., Any], prediction: Callable[..., Any], joint: Callable[..., Any],
                 device: Any = "cpu", max_symbols: int = MAX_SYMBOLS_PER_STEP) -> None:
        self.encoder, self.prediction, self.joint = encoder, prediction, joint
        self.device = torch.device(device)
        self.max_symbols = max_symbols
        self._labels = [torch.tensor([[k]], dtype=torch.int64, device=self.device) for k in range(BLANK)]

    def __call__(self, features: torch.Tensor, lens: torch.Tensor) -> list[int]:
        """Label ids (0..27) for one utterance: features (T, 1, F), lens (1,)."""
        with torch.inference_mode():
            enc, enc_lens = self.encoder(features, lens)
            return self.decode_encoded(enc[0], int(enc_lens[0]))

    def decode_encoded(self, enc: torch.Tensor, frames: int) -> list[int]:
        """The greedy loop over the first `frames` encoder outputs enc (T', H)."""
        labels: list[int] = []
        state = None
        g = new_state = None  # the prediction for (last label, state): unchanged until a symbol is emitted
        for t in range(frames):
            f = enc[t].view(1, 1, -1)
            for _ in range(self.max_symbols):
                if g is None:
                    g, new_state = self.prediction(self._labels[labels[-1]] if labels else None, state)
                k = int(self.joint(f, g)[0, 0, 0].argmax())
                if k == BLANK:
                    break
                labels.append(k)
                state, g = new_state, None
        return labels


def text(labels: list[int]) -> str:
    return "".join(LABELS[k] for k in labels)
