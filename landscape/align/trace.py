"""Trace a model with ``torch.fx`` for alignment: shapes are concrete, nodes know their module.

The tracer runs the example batch alongside the symbolic trace (``MetaTracer`` given a real
tensor), so shape-dependent Python control flow (``if x.dim() > 2``) resolves; every node records
the module it was created in, so an op that stops alignment can be named. ``ShapeProp`` then
annotates every node with its output shape.
"""

from __future__ import annotations

import inspect
import warnings

import torch
from torch import fx, nn
from torch.fx.experimental.meta_tracer import MetaTracer
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import InputError
from .layers import linear_layout


class _Tracer(MetaTracer):
    """An fx tracer that runs the example alongside (so ``x.dim()`` and shapes are concrete) and
    remembers which module each node was created in (for error messages)."""

    def __init__(self) -> None:
        super().__init__()
        self.lmc_scope: list[str] = [""]

    def call_module(self, m, forward, args, kwargs):  # noqa: ANN001, ANN201
        self.lmc_scope.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.lmc_scope.pop()

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        """Linear-like modules (``layers.linear_layout``) stay whole, like ``nn.Linear``."""
        return linear_layout(m) is not None or super().is_leaf_module(m, module_qualified_name)

    def create_node(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        node = super().create_node(*args, **kwargs)
        node.meta["scope"] = self.lmc_scope[-1]
        return node


def trace(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        first = next(iter(inspect.signature(model.forward).parameters))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = tracer.trace(model, meta_args={first: example})
    except Exception as e:  # noqa: BLE001 - any tracing failure means "cannot align this model"
        where = tracer.lmc_scope[-1] or f"the model's forward ({type(model).__name__})"
        line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot align: torch.fx cannot trace {where!r}: {line}") from None
    gm = fx.GraphModule(model, graph)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example)
    except Exception as e:  # noqa: BLE001
        line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"cannot align: the traced model fails on the data: {line}") from None
    return gm
