"""A tiny onnx.helper wrapper for the hand-built synthetic models.

The synthetic RetinaNet and BERT graphs are written node by node (no torch on nodes); this
keeps their code about the architecture rather than about naming tensors and initializers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


class GraphBuilder:
    """Collects nodes and initializers; every helper returns the name of its output tensor."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """Add an initializer (numpy array or scalar/list) and return its name."""
        array = np.asarray(value, dtype=dtype)
        name = self._fresh(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int | Sequence[str] = 1, **attrs: Any) -> Any:
        """Add one node. Returns its output name, or a list when it has several outputs."""
        if isinstance(outputs, int):
            names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        else:
            names = list(outputs)
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self._fresh(op_type), **attrs))
        return names[0] if len(names) == 1 else names

    def model(
        self, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto], producer: str
    ) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, list(inputs), list(outputs), self.initializers)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer
        )
        model.ir_version = min(model.ir_version, 8)
        onnx.checker.check_model(model)
        return model


def tensor(name: str, elem_type: int, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    """A graph input/output declaration (str dims are symbolic, None is unknown)."""
    return helper.make_tensor_value_info(name, elem_type, list(shape))


FLOAT = TensorProto.FLOAT
INT64 = TensorProto.INT64
