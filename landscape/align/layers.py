"""Linear-like modules the permutation tracer recognises, with the layout of their weight.

A linear-like module computes y = x·Wᵀ + b (``nn.Linear``: W stored (out, in)) or y = x·W + b
(transformers' ``Conv1D``, used by GPT-2: W stored (in, out), ``torch.addmm(b, x, W)``). Its
output units start a permutation group along ``out_axis`` of the weight (and axis 0 of the bias);
its input features are permuted along ``in_axis``. The tracer keeps these modules whole (fx does
not trace into them), so their ``view``/``addmm`` internals never reach the group walk.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Layout:
    """Where a linear-like module's weight keeps its output and input units."""

    out_axis: int
    in_axis: int


LINEAR = Layout(out_axis=0, in_axis=1)  # nn.Linear: weight (out, in), y = x Wᵀ + b
TRANSPOSED = Layout(out_axis=1, in_axis=0)  # Conv1D: weight (in, out), y = x W + b

# class name -> layout, for modules recognised without importing their library
_BY_NAME: dict[str, Layout] = {"Conv1D": TRANSPOSED}


def _conv1d_shaped(m: nn.Module) -> bool:
    """transformers' Conv1D: a 2-D ``weight`` (nx, nf) whose second axis is ``nf`` outputs.

    Read from ``_parameters`` (not ``m.weight``): while fx traces, attribute access on a module
    returns a proxy, which cannot be compared."""
    w = m._parameters.get("weight")
    nf = m.__dict__.get("nf")
    return getattr(w, "ndim", 0) == 2 and isinstance(nf, int) and w.shape[1] == nf


def linear_layout(m: nn.Module) -> Layout | None:
    """The weight layout of ``m`` if it is linear-like, else None."""
    if isinstance(m, nn.Linear):
        return LINEAR
    layout = _BY_NAME.get(type(m).__name__)
    if layout is TRANSPOSED and not _conv1d_shaped(m):
        return None
    return layout
