"""ghost radii against closed forms and numerically located zeros of the partition function."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import blobs, exact_hessian, small_problem
from torch import nn

from landscape.analyses.ghost import ghost, logit_slopes
from landscape.errors import InputError
from landscape.problem import Problem


def _linear_problem(classes: int, n: int = 30, d: int = 3, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(d, classes).double()
    with torch.no_grad():
        model.weight.mul_(3.0)
    x, _ = blobs(n=n, d_in=d, classes=classes, seed=seed)
    y = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))
    p = Problem(model, x, y, batch_size=7, dtype=torch.float64)
    v = torch.randn(p.size, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    v = v / v.norm()
    W, b = p.unflatten(p.theta)["weight"], p.unflatten(p.theta)["bias"]
    Wv, bv = p.unflatten(v)["weight"], p.unflatten(v)["bias"]
    z = (x @ W.T + b).numpy()
    a = (x @ Wv.T + bv).numpy()  # logits are linear in θ: a_k = ∇z_k·v exactly
    return p, v, z, a


def _zeros(z: np.ndarray, a: np.ndarray, radius: float, grid: int = 40) -> np.ndarray:
    """Zeros of F(τ) = Σ_k exp(z_k + τ a_k) in a box, by Newton from a grid of starts."""
    a = a - a.mean()  # multiplying F by exp(-τ ā) moves no zero
    re, im = np.meshgrid(np.linspace(-radius, radius, grid), np.linspace(-radius, radius, grid))
    tau = (re + 1j * im).reshape(-1)
    for _ in range(80):
        terms = np.exp(z[None, :] + tau[:, None] * a[None, :])
        f, df = terms.sum(1), (terms * a).sum(1)
        tau = tau - f / np.where(df == 0, 1, df)
    terms = np.exp(z[None, :] + tau[:, None] * a[None, :])
    ok = np.abs(terms.sum(1)) < 1e-9 * np.abs(terms).sum(1)
    return tau[ok & np.isfinite(tau)]


def test_binary_logistic_closed_forms():
    p, v, z, a = _linear_problem(classes=2)
    r = ghost(p, v, "random")
    spread = np.abs(a[:, 0] - a[:, 1])
    np.testing.assert_allclose(r.spread, spread, rtol=1e-10)
    assert r.rho_a == pytest.approx(math.pi / spread.max(), rel=1e-6)
    delta = z[:, 0] - z[:, 1]
    exact = np.sqrt(delta**2 + math.pi**2) / spread
    assert r.rho_exact == pytest.approx(exact.min(), rel=1e-6)
    assert r.rho_top2 == pytest.approx(exact.min(), rel=1e-6)
    assert r.rho_exact >= r.rho_a
    # the closed form is where the partition function really vanishes, and the nearest zero
    for i in range(0, len(z), 5):
        roots = _zeros(z[i], a[i], radius=3 * exact[i])
        assert len(roots) > 0
        assert np.min(np.abs(roots)) == pytest.approx(exact[i], rel=1e-6)


def test_softmax_rho_a_bounds_the_nearest_complex_zero():
    p, v, z, a = _linear_problem(classes=4, n=12)
    r = ghost(p, v, "random")
    spread = a.max(1) - a.min(1)
    assert r.rho_a == pytest.approx(math.pi / spread.max(), rel=1e-6)
    nearest = []
    for i in range(len(z)):
        box = 3 * (math.pi + np.ptp(z[i])) / spread[i]
        roots = _zeros(z[i], a[i], radius=box)
        assert len(roots) > 0, f"no zero found for sample {i}"
        assert np.min(np.abs(roots.imag)) >= math.pi / spread[i] * (1 - 1e-9)
        nearest.append(np.min(np.abs(roots)))
    assert r.rho_a <= min(nearest)
    assert r.rho_exact is None
    # the top-2 estimate is never below the bound
    assert r.rho_top2 >= r.rho_a


def test_sequence_outputs_count_every_position():
    torch.manual_seed(0)
    model = nn.Linear(3, 5).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    y = torch.randint(0, 5, (6, 4))
    p = Problem(model, x, y, batch_size=4, dtype=torch.float64)
    v = torch.randn(p.size, dtype=torch.float64)
    r = ghost(p, v, "random")
    u = v / v.norm()
    a = x @ p.unflatten(u)["weight"].T + p.unflatten(u)["bias"]
    spread = (a.amax(-1) - a.amin(-1)).reshape(-1).numpy()
    assert len(r.spread) == 24
    np.testing.assert_allclose(r.spread, spread, rtol=1e-10)


def test_nonlinear_slopes_hessian_step_and_ratio():
    p = small_problem(batch_size=100)
    _, g = p.loss_and_grad()
    v = -g / g.norm()
    x = torch.cat([xb for xb, _ in p.batches])
    J = torch.func.jacrev(lambda th: p.forward(th, x))(p.theta)  # (n, C, P)
    a = (J @ v).numpy()
    s = logit_slopes(p, v)
    np.testing.assert_allclose(s.slopes, a, rtol=1e-9, atol=1e-12)
    r = ghost(p, -g, "gradient", tau=0.3, quantile=0.5)
    H = exact_hessian(p)
    assert r.tau_hessian == pytest.approx(2.0 / float(v @ H @ v), rel=1e-9)
    spread = a.max(1) - a.min(1)
    assert r.rho_a == pytest.approx(math.pi / spread.max(), rel=1e-9)
    assert r.rho_quantile == pytest.approx(math.pi / np.quantile(spread, 0.5), rel=1e-9)
    tree = r.tree()["ghost"]
    assert tree["r"] == pytest.approx(0.3 / r.rho_a, rel=1e-12)
    assert tree["attrs"]["verdict"].startswith("inside" if tree["r"] < 1 else "outside")
    assert r.slope == pytest.approx(-float(g.norm()), rel=1e-9)
    k = len(r.curve_tau) // 2
    assert r.curve_loss[k] == pytest.approx(p.loss(p.theta + r.curve_tau[k] * v), rel=1e-12)
    assert r.curve_tau[-1] >= 3 * r.rho_a * (1 - 1e-12)


def test_bad_inputs():
    p = small_problem()
    with pytest.raises(InputError, match="quantile"):
        ghost(p, p.theta, quantile=1.5)
    with pytest.raises(InputError, match="zero"):
        ghost(p, torch.zeros_like(p.theta))
    x = torch.randn(10, 5, dtype=torch.float64)
    mse = Problem(
        nn.Linear(5, 2).double(), x, torch.randn(10, 2, dtype=torch.float64), dtype=torch.float64
    )
    with pytest.raises(InputError, match="cross-entropy"):
        ghost(mse, mse.theta)
