"""Stochastic Lanczos quadrature against exact eigenvalue distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.linalg.operator import DenseOperator
from landscape.linalg.slq import density, slq


def build(lam: np.ndarray, seed: int = 0, reflections: int = 4) -> DenseOperator:
    """Q diag(lam) Q^T with Q a product of random Householder reflections (O(P^2) to build)."""
    rng = np.random.default_rng(seed)
    A = np.diag(lam)
    for _ in range(reflections):
        u = rng.standard_normal(lam.size)
        u /= np.linalg.norm(u)
        A = A - 2 * np.outer(u, u @ A)  # H A
        A = A - 2 * np.outer(A @ u, u)  # (H A) H
    return DenseOperator(torch.tensor((A + A.T) / 2))


def wasserstein1(grid: np.ndarray, values: np.ndarray, eigenvalues: np.ndarray) -> float:
    """W1 = integral |F_density - F_exact| dx between a density on a grid and the uniform
    distribution on the eigenvalues (both CDFs evaluated on a common fine grid)."""
    lo = min(grid[0], eigenvalues.min())
    hi = max(grid[-1], eigenvalues.max())
    x = np.linspace(lo, hi, 20001)
    cdf_grid = np.concatenate([[0.0], np.cumsum((values[1:] + values[:-1]) / 2 * np.diff(grid))])
    F = np.interp(x, grid, cdf_grid, left=0.0, right=1.0)
    G = np.searchsorted(np.sort(eigenvalues), x, side="right") / eigenvalues.size
    return float(np.sum(np.abs(F - G)[:-1] * np.diff(x)))


@pytest.fixture(scope="module")
def realistic() -> tuple[np.ndarray, torch.Tensor]:
    """P = 1000: a bulk near 0 (mostly positive, some negative) and 8 outliers."""
    rng = np.random.default_rng(0)
    bulk = np.concatenate([rng.exponential(0.05, 900), -rng.exponential(0.02, 92)])
    lam = np.concatenate([bulk, [45.0, 30.0, 22.0, 15.0, 9.0, 6.0, 4.0, -2.0]])
    return lam, build(lam).matrix


def test_density_matches_exact_distribution(realistic):
    lam, M = realistic
    op = DenseOperator(M)
    r = slq(op)  # defaults: runs=10, steps=100
    assert r.nodes.shape == r.weights.shape == (10, 100)
    assert r.matvecs == op.matvecs == 1000
    np.testing.assert_allclose(r.weights.sum(axis=1), 1.0, rtol=1e-10)
    grid, values, sigma = density(r.nodes, r.weights)
    integral = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(grid)))
    assert abs(integral - 1.0) < 1e-12
    assert np.all(values >= 0) and grid.size == 1000
    spread = lam.max() - lam.min()
    assert 0 < sigma < spread / 50
    assert wasserstein1(grid, values, lam) < 0.03 * spread
    # the extreme nodes are the extreme eigenvalues (Lanczos converges there first)
    assert abs(r.nodes.max() - 45.0) < 1e-6 and abs(r.nodes.min() + 2.0) < 1e-3


def test_trace_within_four_stderr(realistic):
    lam, M = realistic
    r = slq(DenseOperator(M), runs=20, steps=30, seed=4)
    assert r.trace_stderr > 0
    assert abs(r.trace_estimate - lam.sum()) < 4 * r.trace_stderr


def test_steps_beyond_size_give_exact_quadrature():
    lam = np.linspace(-1.0, 3.0, 20)
    op = build(lam, seed=2)
    r = slq(op, runs=3, steps=50, seed=1)
    assert r.nodes.shape == (3, 20) and np.all(r.steps == 20)
    assert r.matvecs == op.matvecs == 60
    # every node with weight is an eigenvalue
    w = r.weights > 1e-12
    gaps = np.min(np.abs(r.nodes[w][:, None] - lam[None]), axis=1)
    assert np.max(gaps) < 1e-8


def test_breakdown_truncates_runs_and_pads_with_zero_weight():
    lam = np.repeat([-1.0, 0.5, 2.0], [10, 20, 20])  # only 3 distinct eigenvalues
    op = build(lam, seed=3)
    r = slq(op, runs=4, steps=15, seed=0)
    assert np.all(r.steps == 3)
    assert r.matvecs == op.matvecs == 12  # finished runs are not applied again
    assert np.all(r.weights[:, 3:] == 0)
    np.testing.assert_allclose(np.sort(r.nodes[:, :3], axis=1), np.tile([-1.0, 0.5, 2.0], (4, 1)),
                               atol=1e-10)
    # the weights are the start vectors' squared components in each eigenspace: the
    # quadrature is exact, so P * sum(w * theta) = z^T A z for each Rademacher z
    grid, values, _ = density(r.nodes, r.weights)
    assert grid.min() < -1.0 and grid.max() > 2.0


def test_same_seed_same_numbers(realistic):
    _, M = realistic
    a = slq(DenseOperator(M), runs=3, steps=20, seed=5)
    b = slq(DenseOperator(M), runs=3, steps=20, seed=5)
    assert np.array_equal(a.nodes, b.nodes) and np.array_equal(a.weights, b.weights)
    assert a.trace_estimate == b.trace_estimate


def test_density_with_given_sigma_and_grid():
    nodes = np.array([[0.0, 1.0]])
    weights = np.array([[0.5, 0.5]])
    grid = np.linspace(-2, 3, 501)
    g, v, s = density(nodes, weights, sigma=0.1, grid=grid)
    assert s == 0.1 and np.array_equal(g, grid)
    assert abs(float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(g))) - 1.0) < 1e-12
    # two equal bumps at 0 and 1 of height 0.5 / (0.1 sqrt(2 pi))
    assert abs(v[200] - 0.5 / (0.1 * np.sqrt(2 * np.pi))) < 1e-6


@pytest.mark.parametrize("group,host", [(1, False), (3, True), (None, True)])
def test_groups_and_host_basis_change_cost_not_answer(realistic, group, host):
    """Runs advanced a few at a time (memory-bounded), or with the basis on the host, are the
    same recurrences: the same quadrature as all runs in one block, and exact for P steps."""
    lam, M = realistic
    whole = slq(DenseOperator(M), runs=5, steps=25, seed=7)
    op = DenseOperator(M)
    parts = slq(op, runs=5, steps=25, seed=7, group=group, basis_on_host=host)
    np.testing.assert_allclose(parts.nodes, whole.nodes, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(parts.weights, whole.weights, rtol=1e-8, atol=1e-12)
    assert parts.matvecs == op.matvecs == 125
    small = np.linspace(-1.0, 3.0, 20)
    exact = slq(build(small, seed=2), runs=3, steps=50, seed=1, group=group, basis_on_host=host)
    w = exact.weights > 1e-12
    assert np.max(np.min(np.abs(exact.nodes[w][:, None] - small[None]), axis=1)) < 1e-8


def test_progress_counts_every_matvec_across_groups():
    seen: list[int] = []
    slq(build(np.linspace(0.0, 1.0, 30)), runs=4, steps=5, group=3,
        progress=lambda n, total: seen.append(n))
    assert seen[-1] == 20 and seen == sorted(seen) and len(seen) == 10
