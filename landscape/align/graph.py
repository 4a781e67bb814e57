"""Permutation groups of a network, found by tracing it with ``torch.fx``.

A hidden unit of a Linear/Conv layer (or of a linear-like module such as transformers' ``Conv1D``,
whose weight is stored transposed: see ``layers``) can be relabelled without changing the function
if every tensor axis indexed by that unit is permuted the same way (Ainsworth et al. 2023, "Git
Re-Basin", §2). Tracing follows each feature axis from the layer that creates it: norm layers and
elementwise ops carry it along, a residual add ties the axes of its operands into one group, and
an axis that reaches the output (or mixes with the input) is fixed. An embedding starts a group
on its feature axis. Any other op that permuted features reach (attention's split into heads, a
flatten of channels with positions) fixes the groups that reach it: those units keep their
places, the rest are still aligned, and ``PermutationSpec.fixed`` names where and why. Ops whose
result is not a tensor (``x.size()``) fix nothing.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import InputError
from .layers import linear_layout
from .trace import trace

FIXED = 0  # the union-find root of axes that must not move

_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Softplus, nn.Mish,
    nn.Hardtanh, nn.ReLU6, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d,
)  # fmt: skip
_ELEMENTWISE_FUNCS = {
    F.relu, F.gelu, F.silu, F.elu, F.leaky_relu, F.dropout, F.max_pool2d, F.avg_pool2d,
    F.adaptive_avg_pool2d, torch.relu, torch.tanh, torch.sigmoid, F.tanh, F.sigmoid,
    operator.neg, torch.erf, torch.exp, torch.abs,
}  # fmt: skip
_ELEMENTWISE_METHODS = {"relu", "tanh", "sigmoid", "contiguous", "clone", "float", "double", "to"}
_BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, torch.add,
           torch.sub, torch.mul, torch.pow}  # fmt: skip
_BINARY_METHODS = {"add", "sub", "mul", "div", "pow"}
_REDUCTIONS = {"mean", "sum", "amax"}


@dataclass
class PermutationSpec:
    """Groups of tensor axes permuted together: ``groups[name] = [(state_dict key, axis), ...]``."""

    groups: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)  # where permuted features were stopped

    def axes_of(self, key: str) -> list[tuple[int, str]]:
        """(axis, group) pairs of one tensor."""
        return [(a, g) for g, axes in self.groups.items() for k, a in axes if k == key]


class _Finder:
    """Walks the traced graph; each tensor node's state is (group id, axis) or None (no axis)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.parent = [FIXED]
        self.names = ["fixed"]
        self.axes: list[tuple[str, int, int]] = []  # (key, axis, group)
        self.state: dict[fx.Node, tuple[int, int] | None] = {}
        self.pinned: dict[str, str] = {}
        self.pins: list[tuple[str, str, list[int]]] = []

    # -- union-find ------------------------------------------------------------------------
    def new(self, name: str) -> int:
        self.parent.append(len(self.parent))
        self.names.append(name)
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            lo, hi = min(a, b), max(a, b)  # FIXED (0) and older groups win
            self.parent[hi] = lo
        return self.find(a)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def shape(node: object) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
        return tuple(meta.shape) if hasattr(meta, "shape") else None

    def where(self, node: fx.Node) -> str:
        scope = node.meta.get("scope") or ""
        if node.op == "call_module":
            scope = f"{node.target} ({type(self.modules[node.target]).__name__})"
        return f"module {scope}" if scope else f"operation {node.name!r}"

    def pin(self, node: fx.Node, why: str) -> None:
        """Fix every group whose features reach ``node`` (after the walk: ``settle``); its
        output carries none."""
        groups = [self.state[x][0] for x in node.all_input_nodes if self.state.get(x) is not None]
        self.pins.append((self.where(node), why, groups))
        return None

    def settle(self) -> None:
        """Fix the pinned groups, naming the places that fixed a group nothing else did (an
        op on the logits, whose units the output fixes anyway, is not news)."""
        for where, why, groups in self.pins:
            if any(self.find(g) != FIXED for g in groups):
                self.pinned.setdefault(where, why)
        for _, _, groups in self.pins:
            for g in groups:
                self.union(g, FIXED)

    def tie(self, owner: str, g: int | None, attr: str, axis: int) -> None:
        m = self.modules[owner]
        if g is not None and getattr(m, attr, None) is not None:
            self.axes.append((f"{owner}.{attr}" if owner else attr, axis, g))

    def arg(self, node: fx.Node) -> tuple[int, int] | None:
        x = node.args[0] if node.args else None
        return self.state.get(x) if isinstance(x, fx.Node) else None

    # -- the walk --------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder" or node.op == "get_attr":
                self.state[node] = None
            elif node.op == "output":
                for x in node.all_input_nodes:
                    if self.state.get(x) is not None:
                        self.union(self.state[x][0], FIXED)
            elif node.op == "call_module":
                self.state[node] = self.module(node)
            else:
                self.state[node] = self.function(node)
        self.settle()

    def module(self, node: fx.Node) -> tuple[int, int] | None:
        m, name, s = self.modules[node.target], node.target, self.arg(node)
        out_shape = self.shape(node)
        conv = isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
        layout = linear_layout(m)
        if layout is not None or (conv and m.groups == 1):
            out_axis, in_axis = (layout.out_axis, layout.in_axis) if layout else (0, 1)
            want = 1 if conv else len(self.shape(node.args[0]) or (0,)) - 1
            if s is not None and s[1] != want:
                self.pin(node, f"receives permuted features on axis {s[1]}")
                s = None
            self.tie(name, s[0] if s else None, "weight", in_axis)
            g = self.new(name)
            self.tie(name, g, "weight", out_axis)
            self.tie(name, g, "bias", 0)
            return (g, 1 if conv else len(out_shape) - 1)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if s is not None:
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    self.tie(name, s[0], attr, 0)
            return s
        if isinstance(m, nn.LayerNorm):
            if s is not None and (len(m.normalized_shape) != 1 or s[1] != len(out_shape) - 1):
                return self.pin(node, "normalises over more than the permuted axis")
            if s is not None:
                self.tie(name, s[0], "weight", 0)
                self.tie(name, s[0], "bias", 0)
            return s
        if isinstance(m, _ELEMENTWISE_MODULES):
            return s
        if isinstance(m, nn.Flatten):
            return self.flatten(node, m.start_dim, m.end_dim)
        if isinstance(m, nn.Embedding) and out_shape:  # a row per token: features on its axis 1
            g = self.new(name)
            self.tie(name, g, "weight", 1)
            return (g, len(out_shape) - 1)
        if any(self.state.get(x) is not None for x in node.all_input_nodes):
            return self.pin(node, "is not supported for alignment")
        return None

    def function(self, node: fx.Node) -> tuple[int, int] | None:
        t, s = node.target, self.arg(node)
        inputs = [self.state.get(x) for x in node.all_input_nodes]
        if all(x is None for x in inputs):
            return None
        if t in _ELEMENTWISE_FUNCS or (node.op == "call_method" and t in _ELEMENTWISE_METHODS):
            return s
        if t in _BINARY or (node.op == "call_method" and t in _BINARY_METHODS):
            return self.binary(node)
        if t is F.layer_norm:  # a norm module of one's own (nanoGPT's LayerNorm) calls it
            return self.layer_norm(node, s)
        if t is torch.flatten or (node.op == "call_method" and t == "flatten"):
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            return self.flatten(node, start, end)
        if node.op == "call_method" and t in _REDUCTIONS or t in (torch.mean, torch.sum):
            return self.reduce(node, s)
        if "tensor_meta" not in node.meta:  # x.size(), x.dim(): no tensor, nothing to permute
            return None
        return self.pin(node, f"applies {getattr(t, '__name__', t)!s} to permuted features")

    def binary(self, node: fx.Node) -> tuple[int, int] | None:
        g, neg = None, 0
        for x in node.all_input_nodes:  # axes counted from the end, as broadcasting does
            sx, shp = self.state.get(x), self.shape(x)
            if sx is None:
                continue
            if g is not None and sx[1] - len(shp) != neg:
                return self.pin(node, "combines tensors permuted along different axes")
            neg = sx[1] - len(shp)
            g = sx[0] if g is None else self.union(g, sx[0])
        for x in node.all_input_nodes:
            shp = self.shape(x)
            if self.state.get(x) is not None or shp is None or len(shp) < -neg:
                continue
            if x.op == "get_attr":
                return self.pin(node, f"combines permuted features with the tensor {x.target!r}")
            if shp[neg] > 1:  # an unpermuted tensor along the same axis pins the group
                g = self.union(g, FIXED)
        return (g, len(self.shape(node)) + neg)

    def layer_norm(self, node: fx.Node, s: tuple[int, int] | None) -> tuple[int, int] | None:
        """F.layer_norm over the permuted (last) axis alone, its weight and bias parameters
        permuted with it."""
        shape = node.args[1] if len(node.args) > 1 else node.kwargs.get("normalized_shape")
        out = self.shape(node)
        if s is None or out is None:
            return s
        if len(tuple(shape)) != 1 or s[1] != len(out) - 1:
            return self.pin(node, "normalises over more than the permuted axis")
        ties = []
        for i, name in ((2, "weight"), (3, "bias")):
            w = node.args[i] if len(node.args) > i else node.kwargs.get(name)
            if isinstance(w, fx.Node) and w.op == "get_attr":
                ties.append((str(w.target), 0, s[0]))
            elif w is not None:
                return self.pin(node, f"normalises with a computed {name}")
        self.axes.extend(ties)
        return s

    def flatten(self, node: fx.Node, start: int, end: int) -> tuple[int, int] | None:
        s = self.arg(node)
        shp = self.shape(node.args[0])
        if s is None or shp is None:
            return s
        start, end = start % len(shp), end % len(shp)
        if s[1] < start:
            return s
        if s[1] == start and all(n == 1 for n in shp[start + 1 : end + 1]):
            return s
        return self.pin(node, "flattens permuted channels together with spatial positions")

    def reduce(self, node: fx.Node, s: tuple[int, int]) -> tuple[int, int] | None:
        shp = self.shape(node.args[0])
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.kwargs.get("keepdim", False) or (len(node.args) > 2 and node.args[2])
        if dims is None:
            return None
        dims = [d % len(shp) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
        if s[1] in dims:
            return None  # the permuted axis is summed out: the result no longer depends on it
        return (s[0], s[1] if keep else s[1] - sum(d < s[1] for d in dims))

    def spec(self, state: dict[str, torch.Tensor]) -> PermutationSpec:
        spec = PermutationSpec(fixed=dict(self.pinned))
        names: dict[int, str] = {}
        for key, axis, g in self.axes:
            root = self.find(g)
            if root == FIXED:
                continue
            name = names.setdefault(root, self.names[root])
            spec.groups.setdefault(name, []).append((key, axis))
            size = int(state[key].shape[axis])
            if spec.sizes.setdefault(name, size) != size:
                raise InputError(
                    f"cannot align: {key} axis {axis} has {size} units, "
                    f"not the {spec.sizes[name]} of its group {name!r}"
                )
        return spec


def permutation_spec(model: nn.Module, example: torch.Tensor) -> PermutationSpec:
    """The permutation groups of ``model``, traced on an example input batch."""
    was_training = model.training
    model.eval()
    try:
        finder = _Finder(trace(model, example))
        finder.run()
    finally:
        model.train(was_training)
    spec = finder.spec(model.state_dict())
    if not spec.groups:
        why = "; ".join(f"{w} {r}" for w, r in list(spec.fixed.items())[:3])
        raise InputError("cannot align: the model has no permutable hidden units"
                         + (f" (fixed where: {why})" if why else ""))
    return spec
