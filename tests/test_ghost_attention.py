"""ghost on attention models on the CPU, where forward-mode AD has no rule for the fused SDPA
kernel nor the multi-head-attention fast path: the slopes fall back to reverse mode twice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import SDPAClassifier
from torch import nn
from torch.func import jvp

from landscape.analyses.ghost import ghost, logit_slopes
from landscape.problem import Problem


class MHAClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.tanh(self.embed(x))
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.head(a.mean(1))




@pytest.mark.parametrize("cls", [MHAClassifier, SDPAClassifier])
def test_ghost_on_attention_matches_finite_differences(cls):
    torch.manual_seed(0)
    model = cls()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, 3, generator=g)
    y = torch.randint(0, 3, (20,), generator=g)
    p = Problem(model, x, y, batch_size=8, dtype=torch.float64)
    v = torch.randn(p.size, generator=g, dtype=torch.float64)
    v = v / v.norm()
    xs = torch.cat([xb for _, xb, _ in p.iter_batches()])
    with pytest.raises(NotImplementedError):  # the reason for the fallback
        jvp(lambda th: p.forward(th, xs), (p.theta,), (v,))
    s = logit_slopes(p, v)
    h = 1e-5
    with torch.no_grad():
        fd = (p.forward(p.theta + h * v, xs) - p.forward(p.theta - h * v, xs)) / (2 * h)
        z = p.forward(p.theta, xs)
    np.testing.assert_allclose(s.logits, z.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.slopes, fd.numpy(), rtol=1e-6, atol=1e-8)
    r = ghost(p, v, "random", tau=0.1)
    spread = (fd.amax(-1) - fd.amin(-1)).numpy()
    assert r.rho_a == pytest.approx(math.pi / spread.max(), rel=1e-6)
    assert math.isfinite(r.vhv) and r.tau == 0.1
