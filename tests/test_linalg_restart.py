"""Thick-restart Lanczos within a bounded basis, against known spectra Q diag(lam) Q^T."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import dense_operator as build

from landscape import memplan
from landscape.errors import InputError
from landscape.linalg import basis as basis_mod
from landscape.linalg.basis import KrylovBasis
from landscape.linalg.lanczos import lanczos
from landscape.linalg.operator import DenseOperator


def spectrum(P: int = 400, seed: int = 1) -> np.ndarray:
    """A bulk near 0 and a few outliers on both sides, clustered enough to need many steps."""
    rng = np.random.default_rng(seed)
    bulk = rng.normal(0.0, 1.0, P - 8)
    return np.concatenate([bulk, [9.0, 8.5, 8.2, 7.0, 6.1, -6.0, -7.5, -9.5]])


@pytest.fixture(scope="module")
def matrix() -> torch.Tensor:
    return build(spectrum()).matrix


@pytest.mark.parametrize("which,k", [("largest", 3), ("smallest", 2), ("both", 2),
                                     ("magnitude", 3)])
def test_a_basis_of_a_few_rows_restarts_to_the_exact_eigenvalues(matrix, which, k):
    exact = np.linalg.eigvalsh(matrix.numpy())
    full = lanczos(DenseOperator(matrix), k=k, which=which, tol=1e-8)
    assert full.restarts == 0 and full.steps > 14  # the unbounded run needs more than 14 rows
    r = lanczos(DenseOperator(matrix), k=k, which=which, tol=1e-8, max_rows=14,
                return_vectors=True)
    want = {"largest": exact[::-1][:k], "smallest": exact[:k][::-1],
            "both": np.concatenate([exact[::-1][:k], exact[:k][::-1]]),
            "magnitude": exact[np.argsort(-np.abs(exact))][:k]}[which]
    assert r.converged and r.restarts > 0 and r.max_rows == 14
    assert np.allclose(r.eigenvalues, np.sort(want)[::-1], rtol=1e-7, atol=0)
    X = r.eigenvectors
    resid = (X @ matrix - torch.from_numpy(r.eigenvalues)[:, None] * X).norm(dim=1)
    assert float(resid.max()) < 1e-6 * 9.5  # the bound reported is a true residual
    assert r.matvecs < 20 * full.matvecs


def test_a_basis_that_holds_the_run_changes_nothing(matrix):
    a = lanczos(DenseOperator(matrix), k=4, tol=1e-9)
    b = lanczos(DenseOperator(matrix), k=4, tol=1e-9, max_rows=a.steps)
    assert b.restarts == 0 and np.array_equal(a.eigenvalues, b.eigenvalues)


def test_float32_restarts_reach_float32_accuracy(matrix):
    exact = np.linalg.eigvalsh(matrix.numpy())[::-1][:2]
    r = lanczos(DenseOperator(matrix.float()), k=2, tol=1e-4, max_rows=8)
    assert r.converged and r.restarts > 0
    assert np.allclose(r.eigenvalues, exact, rtol=1e-4)


def test_the_default_bound_comes_from_free_memory(matrix, monkeypatch):
    row = 400 * 8
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": int(16 * row / 0.7) + 64)
    r = lanczos(DenseOperator(matrix), k=1, tol=1e-10)
    assert r.max_rows == 16 - 4 and r.restarts > 0 and r.converged
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": int(6 * row / 0.7) + 64)
    with pytest.raises(InputError, match="at least 3 vectors of 400 parameters"):
        lanczos(DenseOperator(matrix), k=1)


def test_rotate_replaces_rows_in_place_across_segments_and_column_chunks(monkeypatch):
    monkeypatch.setattr(basis_mod, "ROTATE_BYTES", 7 * 8 * 3)  # 3 columns a chunk (7 rows)
    g = torch.Generator().manual_seed(0)
    P, n, l = 50, 7, 3
    V = torch.linalg.qr(torch.randn(P, n, generator=g, dtype=torch.float64))[0].T
    Q = torch.linalg.qr(torch.randn(n, l, generator=g, dtype=torch.float64))[0]
    b = KrylovBasis(P, 10, torch.float64, "cpu", first_rows=2)
    for row in V:
        b.append(row)
    assert [s.shape[0] for s in b.segments] == [2, 2, 4]
    b.rotate(Q)
    assert b.n == l and len(b.segments) == 2 and b.counts == [2, 1]
    want = Q.T @ V
    got = torch.cat([s[:c] for s, c in zip(b.segments, b.counts)])
    assert torch.allclose(got, want, atol=1e-14)
    b.append(V[0])  # the partly kept segment fills first
    assert b.counts == [2, 2] and b.n == l + 1


def test_segments_reserve_at_most_a_bounded_number_of_bytes(monkeypatch):
    monkeypatch.setattr(basis_mod, "SEGMENT_BYTES", 3 * 100 * 4)
    b = KrylovBasis(100, 50, torch.float32, "cpu")
    for _ in range(7):
        b.append(torch.zeros(100))
    assert [s.shape[0] for s in b.segments] == [3, 3, 3]
    monkeypatch.setattr(basis_mod, "SEGMENT_BYTES", 10)  # less than one row: one row a segment
    b = KrylovBasis(100, 50, torch.float32, "cpu")
    b.append(torch.zeros(100))
    assert b.segments[0].shape == (1, 100)


def test_free_memory_measured_as_the_basis_grows_stops_it_sooner(matrix, monkeypatch):
    row = 400 * 8
    monkeypatch.setattr(basis_mod, "SEGMENT_BYTES", 2 * row)  # a segment of 2 rows
    calls = []

    def available(device="cpu"):  # room for three more segments, then none
        calls.append(1)
        return basis_mod.HOST_MARGIN + (2 * row if len(calls) <= 3 else 0)

    monkeypatch.setattr(memplan, "available_bytes", available)
    r = lanczos(DenseOperator(matrix), k=2, tol=1e-9, max_rows=100)
    exact = np.linalg.eigvalsh(matrix.numpy())[::-1][:2]
    assert r.max_rows == 8 and r.restarts > 0 and r.converged
    assert np.allclose(r.eigenvalues, exact, rtol=1e-8)
    calls.clear()
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": 0)
    with pytest.raises(InputError, match="free memory ran out at 2"):
        lanczos(DenseOperator(matrix), k=2, tol=1e-9, max_rows=100)
