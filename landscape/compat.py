"""Shims for the range of torch versions we support (>= 2.2)."""

from __future__ import annotations

import contextlib

import torch


def math_attention() -> contextlib.AbstractContextManager:
    """Force the math kernel of scaled_dot_product_attention, the only one with forward-mode AD
    and double backward on every device (``torch.nn.attention`` is torch >= 2.3)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch 2.2
        return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_mem_efficient=False)
    return sdpa_kernel(SDPBackend.MATH)
