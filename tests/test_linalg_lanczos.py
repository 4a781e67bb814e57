"""Lanczos against known spectra: matrices built as Q diag(lam) Q^T in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import dense_operator as build

from landscape.linalg.lanczos import lanczos
from landscape.linalg.operator import DenseOperator


def spectrum(P: int = 400, seed: int = 1) -> np.ndarray:
    """A Hessian-like spectrum: a bulk near 0, a few outliers on both sides."""
    rng = np.random.default_rng(seed)
    bulk = rng.normal(0.0, 0.5, P - 8)
    return np.concatenate([bulk, [80.0, 55.0, 31.0, 20.0, 12.0, -9.0, -14.0, -25.0]])


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.abs(want)))


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, torch.Tensor]:
    lam = spectrum()
    return lam, build(lam).matrix


def test_top_k_matches_exact(problem):
    lam, M = problem
    op = DenseOperator(M)
    r = lanczos(op, k=5)
    exact = np.linalg.eigvalsh(M.numpy())[::-1][:5]
    assert np.allclose(exact, np.sort(lam)[::-1][:5], rtol=1e-12)
    assert r.converged and r.solver == "lanczos"
    assert rel_err(r.eigenvalues, exact) < 1e-6
    assert r.eigenvalues.dtype == np.float64 and r.residuals.shape == (5,)
    assert np.all(r.residuals <= 1e-6)
    assert r.matvecs == op.matvecs == r.steps


def test_bottom_k_matches_exact(problem):
    lam, M = problem
    r = lanczos(DenseOperator(M), k=3, which="smallest")
    exact = np.sort(lam)[:3][::-1]  # reported descending
    assert r.converged
    assert rel_err(r.eigenvalues, exact) < 1e-6


def test_both_is_k_from_each_end_sorted_descending(problem):
    lam, M = problem
    r = lanczos(DenseOperator(M), k=2, which="both")
    s = np.sort(lam)
    assert rel_err(r.eigenvalues, np.array([s[-1], s[-2], s[1], s[0]])) < 1e-6


def test_magnitude_finds_dominant_negative_eigenvalue():
    # Power iteration on A finds the largest |lambda|; a "largest" solver would report 10.
    rng = np.random.default_rng(3)
    lam = np.concatenate([rng.uniform(-1, 1, 297), [10.0, 9.0, -100.0]])
    op = build(lam, seed=4)
    r = lanczos(op, k=2, which="magnitude")
    assert rel_err(r.eigenvalues, np.array([10.0, -100.0])) < 1e-6
    assert rel_err(lanczos(op, k=1).eigenvalues, np.array([10.0])) < 1e-6


def test_small_problem_gives_exact_spectrum():
    lam = np.array([3.0, -1.0, 0.5, 2.0, 7.0])
    op = build(lam, seed=5)
    r = lanczos(op, k=10, max_steps=10)
    assert r.steps == 5 and r.matvecs == 5 and r.converged
    np.testing.assert_allclose(r.eigenvalues, np.sort(lam)[::-1], rtol=1e-12)
    r2 = lanczos(op, k=10, which="smallest")
    np.testing.assert_allclose(r2.eigenvalues, np.sort(lam)[::-1], rtol=1e-12)


def test_repeated_and_low_rank_spectra():
    # Repeated top eigenvalue: single-vector Krylov spaces hold one copy; the restart after
    # the exhausted Krylov space must find the second one.
    lam = np.concatenate([[5.0, 5.0], np.ones(98)])
    r = lanczos(build(lam, seed=6), k=2)
    np.testing.assert_allclose(r.eigenvalues, [5.0, 5.0], rtol=1e-10)
    assert r.converged
    # Rank 3 operator of size 200: the Krylov space is exhausted after 4 steps.
    lam = np.concatenate([[3.0, 2.0, 1.0], np.zeros(197)])
    op = build(lam, seed=7)
    r = lanczos(op, k=2)
    np.testing.assert_allclose(r.eigenvalues, [3.0, 2.0], rtol=1e-10)
    assert r.converged and r.steps <= 10 and op.matvecs == r.matvecs


def test_same_seed_is_bit_identical(problem):
    _, M = problem
    a = lanczos(DenseOperator(M), k=3, seed=11, return_vectors=True)
    b = lanczos(DenseOperator(M), k=3, seed=11, return_vectors=True)
    assert np.array_equal(a.eigenvalues, b.eigenvalues)
    assert np.array_equal(a.residuals, b.residuals)
    assert torch.equal(a.eigenvectors, b.eigenvectors)
    c = lanczos(DenseOperator(M), k=3, seed=12)
    assert not np.array_equal(a.eigenvalues, c.eigenvalues)  # a different start vector


def test_unconverged_run_says_so():
    # A clustered top: 1, 0.999, 0.998, ... needs many steps; 6 are not enough.
    rng = np.random.default_rng(8)
    lam = np.concatenate([1.0 - 1e-3 * np.arange(20), rng.uniform(0, 0.9, 280)])
    op = build(lam, seed=9)
    r = lanczos(op, k=3, max_steps=6)
    assert not r.converged
    assert r.steps == 6 and op.matvecs == 6
    assert np.max(r.residuals) > 1e-6
    # The reported bound is a true bound on the eigenvalue error (Kahan-Parlett-Jiang):
    # every Ritz value lies within its residual norm of some eigenvalue.
    abs_bound = r.residuals * np.abs(r.eigenvalues)
    gaps = np.min(np.abs(r.eigenvalues[:, None] - lam[None]), axis=1)
    assert np.all(gaps <= abs_bound * (1 + 1e-8) + 1e-12)


def test_eigenvectors_are_eigenvectors(problem):
    lam, M = problem
    r = lanczos(DenseOperator(M), k=4, return_vectors=True)
    X = r.eigenvectors
    assert X.shape == (4, M.shape[0])
    np.testing.assert_allclose((X @ X.T).numpy(), np.eye(4), atol=1e-10)
    R = X @ M - torch.tensor(r.eigenvalues)[:, None] * X
    assert float(R.norm(dim=1).max()) < 1e-6 * 80


def test_float32_operator(problem):
    lam, M = problem
    r = lanczos(DenseOperator(M.float()), k=3, tol=1e-5)
    assert rel_err(r.eigenvalues, np.sort(lam)[::-1][:3]) < 1e-5


def test_host_basis_and_progress(problem):
    _, M = problem
    calls: list[tuple[int, int | None]] = []
    r = lanczos(DenseOperator(M), k=2, basis_on_host=True,
                progress=lambda d, t: calls.append((d, t)))
    assert [c[0] for c in calls] == list(range(1, r.matvecs + 1))
    assert r.converged


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lanczos_on_cuda(problem):
    lam, M = problem
    op = DenseOperator(M.cuda())
    for host in (False, True):
        r = lanczos(op, k=3, return_vectors=True, basis_on_host=host)
        assert r.converged and r.eigenvectors.device.type == "cuda"
        assert rel_err(r.eigenvalues, np.sort(lam)[::-1][:3]) < 1e-6


@pytest.mark.parametrize("k,tol", [(1, 1e-3), (5, 1e-3), (3, 1e-8)])
def test_stops_at_the_first_step_whose_bound_meets_tol(problem, k, tol):
    """No overshoot from checking only every few steps: one step fewer is not converged."""
    _, M = problem
    r = lanczos(DenseOperator(M), k=k, tol=tol)
    assert r.converged and np.all(r.residuals <= tol)
    short = lanczos(DenseOperator(M), k=k, tol=tol, max_steps=r.steps - 1)
    assert not short.converged and np.max(short.residuals) > tol


class _Diagonal:
    """diag(d) as an operator: the eigenvectors are the unit vectors, at any size."""

    def __init__(self, d: torch.Tensor) -> None:
        self.d, self.size, self.dtype = d, d.numel(), d.dtype
        self.device, self.matvecs = d.device, 0

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        self.matvecs += V.shape[0]
        return V * self.d


def test_a_start_vector_is_used_and_a_bad_one_refused(problem):
    lam, M = problem
    top = np.linalg.eigh(M.numpy())[1][:, -1]
    near = torch.from_numpy(top) + 1e-4 * torch.randn(M.shape[0], dtype=torch.float64,
                                                        generator=torch.Generator().manual_seed(3))
    started = lanczos(op := DenseOperator(M), k=1, tol=1e-8, start=3.0 * near)
    plain = lanczos(DenseOperator(M), k=1, tol=1e-8)
    assert abs(started.eigenvalues[0] - 80.0) < 1e-6 and abs(plain.eigenvalues[0] - 80.0) < 1e-6
    assert op.matvecs < plain.matvecs  # 8 against 11: it started near the answer
    for bad in (torch.zeros(M.shape[0]), torch.ones(3), torch.full((M.shape[0],), float("nan"))):
        with pytest.raises(ValueError, match="start"):
            lanczos(DenseOperator(M), k=1, start=bad)


def test_a_start_along_the_second_eigenvector_can_certify_the_wrong_top():
    """Why the default start is random: with half its weight on the second eigenvector (λ2 = 1
    against λ1 = 1.2, the rest in [0, 0.5], P = 200,000), the residual test passes at λ2 before
    the top eigenvector has grown from the random half, on some seeds; a random start never
    stops there (each eigenvector starts with about the same weight)."""
    P = 200_000
    d = torch.rand(P, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.5
    d[0], d[1] = 1.2, 1.0
    tops_random, tops_biased = [], []
    for seed in range(5):
        r = torch.randn(P, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        e2 = torch.zeros(P, dtype=torch.float64)
        e2[1] = 1.0
        tops_random.append(lanczos(_Diagonal(d), k=1, tol=1e-3, seed=seed).eigenvalues[0])
        biased = lanczos(_Diagonal(d), k=1, tol=1e-3, start=r / r.norm() + e2)
        assert biased.converged
        tops_biased.append(biased.eigenvalues[0])
    assert np.allclose(tops_random, 1.2, rtol=1e-3)
    assert any(abs(t - 1.0) < 1e-3 for t in tops_biased)  # "converged", 17% low
