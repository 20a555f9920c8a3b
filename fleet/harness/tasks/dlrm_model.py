"""DLRM-DCNv2 as the v3.1 reference runs it (torchrec `DLRM_DCN` inside `DLRMTrain`), in plain PyTorch.

torchrec is not used: its wheels pin their own torch (a second, CUDA build beside the pinned
CPU torch), and inference needs only what it computes here, which is small:

- sparse: 26 EmbeddingBag tables (`t_cat_0`..`t_cat_25`), SUM pooling over each feature's
  fixed multi-hot indices (the reference's KeyedJaggedTensor has a constant length per
  feature, so a bag is one row of a `[rows, hotness]` index matrix);
- dense: MLP 13 -> 512 -> 256 -> 128, ReLU after every layer (torchrec `MLP`);
- interaction: concat(dense, 26 pooled) -> 27 x 128 = 3456 -> LowRankCrossNet (3 layers,
  rank 512): x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l;
- over: MLP 3456 -> 1024 -> 1024 -> 512 -> 256 (ReLU), Linear 256 -> 1; sigmoid.

Parameter names are torchrec's, so the official weights, restored from their torchsnapshot
and saved as a state dict (`torch.save(model.state_dict())`, with or without the `model.` of
DLRMTrain and the `module.` of DistributedModelParallel), load as they are. Every size is
read off the weights' shapes: the official 97 GB checkpoint and the synthetic one with tiny
tables load through the same code. Loaded weights-only: a checkpoint is data, never code.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fleet.harness.errors import HarnessError
from fleet.harness.tasks.criteo import DENSE_FEATURES, HOTNESS

FEATURES = len(HOTNESS)
TABLE = "sparse_arch.embedding_bag_collection.embedding_bags.t_cat_{}.weight"
PREFIXES = ("module.", "model.")  # DistributedModelParallel, DLRMTrain


class Perceptron(nn.Module):
    """torchrec's Perceptron: a Linear under `_linear`, then ReLU."""

    def __init__(self, fan_in: int, fan_out: int) -> None:
        super().__init__()
        self._linear = nn.Linear(fan_in, fan_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self._linear(x))


class Mlp(nn.Module):
    """torchrec's MLP: Perceptrons under `_mlp`."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self._mlp = nn.Sequential(*(Perceptron(a, b) for a, b in itertools.pairwise(sizes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp(x)


class DenseArch(nn.Module):
    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.model = Mlp(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SparseArch(nn.Module):
    """26 SUM-pooled bags; indices are one `[rows, sum(hotness)]` matrix, features side by side."""

    def __init__(self, table_rows: list[int], dim: int, hotness: tuple[int, ...]) -> None:
        super().__init__()
        self.embedding_bag_collection = nn.Module()
        self.embedding_bag_collection.embedding_bags = nn.ModuleDict(
            {f"t_cat_{i}": nn.EmbeddingBag(rows, dim, mode="sum") for i, rows in enumerate(table_rows)}
        )
        self.hotness = hotness

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        """(B, sum(hotness)) int -> (B, 26, dim)."""
        bags = self.embedding_bag_collection.embedding_bags
        pooled = []
        start = 0
        for i, k in enumerate(self.hotness):
            pooled.append(bags[f"t_cat_{i}"](sparse[:, start : start + k]))
            start += k
        return torch.stack(pooled, dim=1)


class LowRankCrossNet(nn.Module):
    def __init__(self, width: int, layers: int, rank: int) -> None:
        super().__init__()
        self.W_kernels = nn.ParameterList([nn.Parameter(torch.empty(width, rank)) for _ in range(layers)])
        self.V_kernels = nn.ParameterList([nn.Parameter(torch.empty(rank, width)) for _ in range(layers)])
        self.bias = nn.ParameterList([nn.Parameter(torch.zeros(width)) for _ in range(layers)])

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for w, v, b in zip(self.W_kernels, self.V_kernels, self.bias, strict=True):
            x = x0 * (nn.functional.linear(nn.functional.linear(x, v), w) + b) + x
        return x


class InteractionDCNArch(nn.Module):
    def __init__(self, width: int, layers: int, rank: int) -> None:
        super().__init__()
        self.crossnet = LowRankCrossNet(width, layers, rank)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        combined = torch.cat((dense.unsqueeze(1), sparse), dim=1)
        return self.crossnet(combined.reshape(combined.shape[0], -1))


class OverArch(nn.Module):
    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.model = nn.Sequential(Mlp(sizes[:-1]), nn.Linear(sizes[-2], sizes[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DlrmDcn(nn.Module):
    """`forward(dense [B,13] float, sparse [B,214] int)` -> click probability [B] (sigmoid of the logit)."""

    def __init__(self, table_rows: list[int], dim: int, dense_sizes: list[int], cross_layers: int,
                 cross_rank: int, over_sizes: list[int], hotness: tuple[int, ...] = HOTNESS) -> None:
        super().__init__()
        width = (len(table_rows) + 1) * dim
        self.sparse_arch = SparseArch(table_rows, dim, hotness)
        self.dense_arch = DenseArch([DENSE_FEATURES, *dense_sizes])
        self.inter_arch = InteractionDCNArch(width, cross_layers, cross_rank)
        self.over_arch = OverArch([width, *over_sizes])

    def logit(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """The over arch's output [B] (DLRMTrain's logits), before the reference's sigmoid."""
        crossed = self.inter_arch(self.dense_arch(dense), self.sparse_arch(sparse))
        return self.over_arch(crossed).squeeze(-1)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(dense, sparse))


def strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """torchrec names without DistributedModelParallel's `module.` and DLRMTrain's `model.`."""
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def _layers(state: dict[str, Any], pattern: str) -> list[Any]:
    """The weights matching `pattern` (one group: the layer number), in layer order."""
    found = {int(m.group(1)): v for k, v in state.items() if (m := re.fullmatch(pattern, k))}
    return [found[i] for i in sorted(found)]


def architecture(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """DlrmDcn's constructor arguments, read off the weights' shapes; one line naming what is missing."""
    def need(what: str, found: list[Any]) -> list[Any]:
        if not found:
            raise HarnessError(f"DLRM-v2 checkpoint {path} has no {what} weights "
                               f"(expected torchrec DLRM_DCN names, e.g. {TABLE.format(0)})")
        return found

    tables = []
    for i in range(FEATURES):
        weight = state.get(TABLE.format(i))
        if weight is None:
            raise HarnessError(f"DLRM-v2 checkpoint {path} lacks {TABLE.format(i)} (26 tables expected)")
        tables.append(weight)
    dense = need("dense_arch", _layers(state, r"dense_arch\.model\._mlp\.(\d+)\._linear\.weight"))
    over = need("over_arch", _layers(state, r"over_arch\.model\.0\._mlp\.(\d+)\._linear\.weight"))
    head = state.get("over_arch.model.1.weight")
    if head is None:
        raise HarnessError(f"DLRM-v2 checkpoint {path} lacks over_arch.model.1.weight (the final Linear)")
    cross = need("inter_arch.crossnet", _layers(state, r"inter_arch\.crossnet\.V_kernels\.(\d+)"))
    return {
        "table_rows": [int(t.shape[0]) for t in tables],
        "dim": int(tables[0].shape[1]),
        "dense_sizes": [int(w.shape[0]) for w in dense],
        "cross_layers": len(cross),
        "cross_rank": int(cross[0].shape[0]),
        "over_sizes": [*(int(w.shape[0]) for w in over), int(head.shape[0])],
    }


def load_dlrm(path: Path) -> DlrmDcn:
    """The network with the checkpoint's weights; a missing, extra or mis-shaped tensor is one line."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a usable state dict"
        raise HarnessError(f"DLRM-v2 checkpoint {path} is not a readable torch state dict: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise HarnessError(f"DLRM-v2 checkpoint {path} holds a {type(state).__name__}, not a state dict")
    state = strip_prefixes(state)
    model = DlrmDcn(**architecture(state, path))
    expected = model.state_dict()
    for name, tensor in expected.items():
        got = state.get(name)
        if got is None:
            raise HarnessError(f"DLRM-v2 checkpoint {path} lacks {name}")
        if tuple(got.shape) != tuple(tensor.shape):
            raise HarnessError(f"DLRM-v2 checkpoint {path}: {name} has shape {tuple(got.shape)}, "
                               f"the architecture its other weights describe needs {tuple(tensor.shape)}")
    extra = sorted(set(state) - set(expected))
    if extra:
        more = " ..." if len(extra) > 3 else ""
        raise HarnessError(f"DLRM-v2 checkpoint {path} has weights DLRM_DCN does not use: "
                           f"{', '.join(extra[:3])}{more}")
    model.load_state_dict(state, strict=True, assign=True)
    return model
