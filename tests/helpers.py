"""Small models with exact float64 curvature, shared by the tests."""

from __future__ import annotations

import torch
from torch import nn

from landscape.problem import Problem


class SDPAClassifier(nn.Module):
    """Two heads of scaled-dot-product attention over (B, T, 3) inputs, mean-pooled to 3 classes:
    SDPA's fused kernels have no forward-mode rule on the CPU (torch 2.13), so products on it
    take the fallback paths."""

    def __init__(self, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.qkv = nn.Linear(3, 24)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        b, t, _ = x.shape
        q, k, v = (u.reshape(b, t, 2, 4).transpose(1, 2) for u in self.qkv(x).split(8, -1))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.head(o.transpose(1, 2).reshape(b, t, 8).mean(1))


def tanh_mlp(d_in: int = 5, hidden: int = 6, d_out: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)).double()


def blobs(n: int = 100, d_in: int = 5, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64) + y[:, None].double()
    return x, y


def small_problem(batch_size: int = 64, n: int = 100, seed: int = 0, **kw) -> Problem:
    x, y = blobs(n=n, seed=seed)
    return Problem(tanh_mlp(seed=seed), x, y, batch_size=batch_size, dtype=torch.float64, **kw)


def exact_hessian(problem: Problem) -> torch.Tensor:
    """∇²L(θ) of the whole-data-set mean loss, from torch.func.hessian on one batch of all data."""
    x = torch.cat([xb for xb, _ in problem.batches])
    y = torch.cat([yb for _, yb in problem.batches])
    return torch.func.hessian(lambda th: problem.batch_loss(th, x, y))(problem.theta)


def dense_operator(lam, seed: int = 0, dtype: torch.dtype = torch.float64):
    """A DenseOperator Q diag(lam) Qᵀ with a seeded random orthogonal Q: a known spectrum."""
    import numpy as np

    from landscape.linalg.operator import DenseOperator

    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
    A = (Q * lam) @ Q.T
    return DenseOperator(torch.tensor((A + A.T) / 2, dtype=dtype))


def adam_diagonal(model: torch.nn.Module, opt: torch.optim.Optimizer) -> torch.Tensor:
    """Cohen et al.'s Adam preconditioner P = (1 − β1^t)(sqrt(v_t / (1 − β2^t)) + ε), written out
    from a torch Adam's own state (one param group), flat over ``model.parameters()``."""
    b1, b2 = opt.param_groups[0]["betas"]
    eps = opt.param_groups[0]["eps"]
    parts = []
    for q in model.parameters():
        st = opt.state[q]
        t = float(st["step"])
        v_hat = st["exp_avg_sq"] / (1 - b2**t)
        parts.append(((1 - b1**t) * (v_hat.sqrt() + eps)).reshape(-1))
    return torch.cat(parts).double()
