"""Fused SDPA kernels have no forward-mode rule (CPU) nor double backward (flash/efficient on
CUDA): curvature products switch to reverse-over-reverse with the math kernel, say so once in
``problem.notes``, and still equal the exact Hessian's (dense, from autograd double backward)."""

from __future__ import annotations

import torch
from helpers import SDPAClassifier

from landscape.compat import math_attention
from landscape.curvature import FALLBACK_NOTE, make_operator
from landscape.problem import Problem


def test_sdpa_products_fall_back_to_math_and_say_so_once():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, 3, generator=g)
    y = torch.randint(0, 3, (12,), generator=g)
    p = Problem(SDPAClassifier(causal=True), x, y, batch_size=12, dtype=torch.float64)
    leaf = p.theta.clone().requires_grad_(True)
    with math_attention():  # the fused CPU kernel has no double backward: the reason for all this
        (grad,) = torch.autograd.grad(p.batch_loss(leaf, *p.batches[0]), leaf, create_graph=True)
        eye = torch.eye(p.size, dtype=torch.float64)
        H = torch.stack([torch.autograd.grad(grad, leaf, e, retain_graph=True)[0] for e in eye])
    op = make_operator(p)
    V = torch.randn(3, p.size, generator=g, dtype=torch.float64)
    for _ in range(2):
        torch.testing.assert_close(op(V), V @ H.T, rtol=1e-10, atol=1e-12)
    assert op.reverse_over_reverse
    assert p.notes.count(FALLBACK_NOTE) == 1
