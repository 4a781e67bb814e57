"""The Krylov basis store: segments, placement, and the projections Lanczos relies on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import dense_operator

import landscape.linalg.basis as basis_mod
from landscape.linalg.basis import KrylovBasis
from landscape.linalg.lanczos import lanczos


def _orthonormal_rows(n: int, P: int, seed: int = 0) -> np.ndarray:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((P, n)))
    return Q.T


def test_segments_double_and_projections_equal_the_dense_ones():
    P, n = 50, 23
    V = _orthonormal_rows(n, P)
    b = KrylovBasis(P, cap=40, dtype=torch.float64, device=torch.device("cpu"), first_rows=3)
    for row in V:
        b.append(torch.tensor(row))
    assert [s.shape[0] for s in b.segments] == [3, 3, 6, 12] and b.counts[-1] == 23 - 12
    w = np.random.default_rng(1).standard_normal(P)
    out, h = b.orthogonalise(torch.tensor(w))
    np.testing.assert_allclose(out.numpy(), w - V.T @ (V @ w), atol=1e-12)
    np.testing.assert_allclose(h.numpy(), V @ w, atol=1e-12)
    Y = np.random.default_rng(2).standard_normal((4, n))
    np.testing.assert_allclose(b.combine(torch.tensor(Y)).numpy(), Y @ V, atol=1e-12)


def test_full_basis_refuses_more_rows():
    b = KrylovBasis(4, cap=2, dtype=torch.float64, device=torch.device("cpu"))
    b.append(torch.zeros(4))
    b.append(torch.zeros(4))
    assert [s.shape[0] for s in b.segments] == [2]
    with pytest.raises(ValueError, match="full"):
        b.append(torch.zeros(4))


def test_lanczos_across_many_segments_finds_the_known_spectrum(monkeypatch):
    lam = np.concatenate([[9.0, 7.5, 6.0], np.linspace(-1.0, 1.0, 297)])
    monkeypatch.setattr(basis_mod, "FIRST_ROWS", 2)
    r = lanczos(dense_operator(lam, seed=3), k=3, tol=1e-10, return_vectors=True)
    assert r.converged and r.steps > 8  # several segments: 2, 2, 4, 8, ...
    np.testing.assert_allclose(r.eigenvalues, [9.0, 7.5, 6.0], rtol=1e-9)


def test_placement_spills_to_the_host_when_the_gpu_is_short(monkeypatch):
    P = 1_000_000  # 4 MB per float32 row
    b = KrylovBasis(P, cap=500, dtype=torch.float32, device=torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1_000_000_000, 0))
    assert b._place(64) == torch.device("cuda")  # 256 MB <= half of 1 GB
    assert b._place(256).type == "cpu"  # 1 GB > half of 1 GB
    assert KrylovBasis(P, 8, torch.float32, torch.device("cuda"), on_host=False)._place(256) \
        == torch.device("cuda")
    assert KrylovBasis(P, 8, torch.float32, torch.device("cpu"), on_host=True)._place(1).type \
        == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lanczos_on_cuda_with_a_spilled_basis(monkeypatch):
    """Later segments on the host, earlier on the GPU: the same eigenpairs."""
    lam = np.concatenate([[9.0, 7.5, 6.0], np.linspace(-1.0, 1.0, 297)])
    from landscape.linalg.operator import DenseOperator

    op = DenseOperator(dense_operator(lam, seed=3).matrix.cuda())
    monkeypatch.setattr(basis_mod, "FIRST_ROWS", 2)
    row_bytes = 300 * 8
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20 * row_bytes, 0))
    seen: list[list[torch.device]] = []
    real_append = KrylovBasis.append

    def spy(self, v):
        real_append(self, v)
        seen.append(self.devices)

    monkeypatch.setattr(KrylovBasis, "append", spy)
    r = lanczos(op, k=3, tol=1e-10, return_vectors=True)
    kinds = {d.type for d in seen[-1]}
    assert kinds == {"cuda", "cpu"}
    assert r.eigenvectors.device.type == "cuda"
    np.testing.assert_allclose(r.eigenvalues, [9.0, 7.5, 6.0], rtol=1e-9)
