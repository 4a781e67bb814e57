"""The benchmarks' exact Hessian: right through layer_norm, checked entry by entry against central
differences of the gradient (the product under test never enters the check)."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.reference import dense_hessian


def _layer_norm_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(th: torch.Tensor) -> torch.Tensor:
        parts = torch.split(th, [s.numel() for s in shapes])
        params = {n: t.view(s) for (n, _), t, s in zip(model.named_parameters(), parts, shapes)}
        out = torch.func.functional_call(model, params, (x,))
        return nn.functional.cross_entropy(out, y)

    return loss, theta


def _grad(loss, theta: torch.Tensor) -> torch.Tensor:
    leaf = theta.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(leaf), leaf)
    return g


def test_dense_hessian_matches_central_differences_through_layer_norm():
    loss, theta = _layer_norm_loss()
    H = dense_hessian(loss, theta)
    assert H.shape == (theta.numel(), theta.numel())
    assert float((H - H.T).abs().max()) < 1e-12 * float(H.abs().max())
    eps = 1e-5
    for j in (0, 7, 24, 30, 40, theta.numel() - 1):  # Linear, LayerNorm weight/bias, last Linear
        e = torch.zeros_like(theta)
        e[j] = eps
        fd = (_grad(loss, theta + e) - _grad(loss, theta - e)) / (2 * eps)
        err = float((H[:, j] - fd).abs().max())
        assert err < 1e-7 * max(float(fd.abs().max()), 1e-3), (j, err)
