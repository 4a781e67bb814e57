"""Shims for the range of torch versions we support (>= 2.2)."""

from __future__ import annotations

import contextlib
import warnings

import torch


def math_attention() -> contextlib.AbstractContextManager:
    """Force the math kernel of scaled_dot_product_attention, the only one with forward-mode AD
    and double backward on every device (``torch.nn.attention`` is torch >= 2.3)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch 2.2
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_mem_efficient=False)
    return sdpa_kernel(SDPBackend.MATH)


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 for float32 matmuls and cuDNN convolutions, process-wide.

    cuDNN convolutions default to TF32 (10-bit mantissa) on Ampere and later: on an H100 a ResNet's
    Hessian-vector product then differs from float64 by 2.8e-3 (relative), against 4.5e-7 in
    IEEE float32 (``benchmarks/RESULTS.md``). The flags are global and read when each kernel
    runs, backward passes included, so a context around the forward alone would not do. The
    legacy flags work on every torch >= 2.2; torch >= 2.9 warns that they will be replaced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
