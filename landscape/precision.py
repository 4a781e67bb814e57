"""Mixed precision: the model's forward and backward passes in bf16/fp16, everything else not.

``model_dtype="bf16"`` runs the model under ``torch.autocast``: matrix products (linear, matmul,
convolutions) take bf16 copies of the float32 parameters and inputs, while softmax, norms,
reductions and the loss stay float32 (autocast's own op lists), and the output is returned in
float32. θ, the Krylov vectors and every reduction over the data stay in the Problem's dtype.
Autocast's casts are differentiable, so gradients and Hessian-vector products (their backward
passes run the recorded bf16 kernels) need nothing else. A bf16 product carries 8 significant
bits, so products and eigenvalues are accurate to about 1e-2 (relative), fp16 to about 1e-3.

The switch is a pair of forward hooks on the model (kept by ``copy.deepcopy``, parameter names
unchanged), the post-hook registered with ``always_call`` so an error never leaves autocast on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .errors import InputError

MODEL_DTYPES: dict[str, torch.dtype | None] = {
    "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}
ACCURACY = {torch.bfloat16: "1e-2", torch.float16: "1e-3"}


def _device_type(args: tuple, kwargs: dict[str, Any]) -> str:
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor):
            return value.device.type
    return "cpu"


def _enter(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
    ctx = torch.autocast(_device_type(args, kwargs), dtype=module._landscape_model_dtype)
    ctx.__enter__()
    module._landscape_autocast.append(ctx)


def _exit(module: nn.Module, args: tuple, kwargs: dict[str, Any], out: Any) -> Any:
    if module._landscape_autocast:
        module._landscape_autocast.pop().__exit__(None, None, None)
    if isinstance(out, Tensor):
        return out.float() if out.is_floating_point() else out
    logits = out.get("logits") if isinstance(out, dict) else getattr(out, "logits", None)
    if isinstance(logits, Tensor) and logits.is_floating_point():
        out["logits"] = logits.float()  # ModelOutput and dict both take item assignment
    return out


def resolve_model_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    """None (the Problem's own dtype throughout) or the autocast dtype named by ``name``."""
    if name is None or isinstance(name, torch.dtype):
        return None if name in (None, torch.float32) else name
    if name not in MODEL_DTYPES:
        raise InputError(f"`model_dtype` {name!r}: use one of {', '.join(MODEL_DTYPES)}")
    return MODEL_DTYPES[name]


def autocast_model(model: nn.Module, dtype: torch.dtype) -> str:
    """Run ``model``'s forward passes under autocast to ``dtype``; returns the note to show."""
    if getattr(model, "_landscape_model_dtype", None) is None:
        model._landscape_autocast = []
        model.register_forward_pre_hook(_enter, with_kwargs=True)
        model.register_forward_hook(_exit, with_kwargs=True, always_call=True)
    model._landscape_model_dtype = dtype
    name = str(dtype).replace("torch.", "")
    return (f"forward and backward passes in {name} (autocast); curvature products are accurate "
            f"to about {ACCURACY.get(dtype, '1e-2')} (relative)")
