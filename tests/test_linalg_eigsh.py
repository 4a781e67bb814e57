"""eigsh backends agree with each other and with known spectra."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import dense_operator as build

from landscape.errors import InputError
from landscape.linalg.eigsh import eigsh
from landscape.linalg.operator import DenseOperator, as_numpy_linear_operator


@pytest.fixture(scope="module")
def lam() -> np.ndarray:
    rng = np.random.default_rng(2)
    return np.concatenate([rng.normal(0, 1, 294), [60.0, 40.0, 25.0, -30.0, -45.0, 15.0]])


@pytest.mark.parametrize("which", ["largest", "smallest", "both", "magnitude"])
def test_lanczos_and_scipy_agree_with_exact(lam, which):
    s = np.sort(lam)
    want = {
        "largest": s[::-1][:3],
        "smallest": s[:3][::-1],
        "both": np.r_[s[::-1][:3], s[:3][::-1]],
        "magnitude": np.array([60.0, 40.0, -45.0]),
    }[which]
    results = {}
    for solver in ("lanczos", "scipy"):
        op = build(lam)
        r = eigsh(op, k=3, which=which, solver=solver, tol=1e-8)
        assert r.solver == solver and r.converged
        assert r.matvecs == op.matvecs  # every product counted, the residual block included
        np.testing.assert_allclose(r.eigenvalues, want, rtol=1e-6)
        results[solver] = r.eigenvalues
    np.testing.assert_allclose(results["lanczos"], results["scipy"], rtol=1e-6)


def test_scipy_residuals_are_true_residuals(lam):
    op = build(lam)
    r = eigsh(op, k=2, solver="scipy", return_vectors=True)
    X = r.eigenvectors
    true = (X @ op.matrix - torch.tensor(r.eigenvalues)[:, None] * X).norm(dim=1).numpy()
    np.testing.assert_allclose(r.residuals, true / np.abs(r.eigenvalues), rtol=1e-6, atol=1e-15)
    assert np.all(r.residuals < 1e-6)


def test_scipy_is_deterministic(lam):
    a = eigsh(build(lam), k=2, solver="scipy", seed=3)
    b = eigsh(build(lam), k=2, solver="scipy", seed=3)
    assert np.array_equal(a.eigenvalues, b.eigenvalues) and a.matvecs == b.matvecs


def test_scipy_small_problem_falls_back_to_dense():
    lam = np.array([4.0, -2.0, 1.0, 0.5])
    op = build(lam, seed=1)
    r = eigsh(op, k=4, solver="scipy")
    np.testing.assert_allclose(r.eigenvalues, np.sort(lam)[::-1], rtol=1e-12)
    assert r.matvecs == op.matvecs == 8  # 4 to form A, 4 for the residuals


def test_numpy_linear_operator_is_float64_view():
    op = DenseOperator(torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float32))
    L = as_numpy_linear_operator(op)
    y = L.matvec(np.array([1.0, 2.0]))
    assert y.dtype == np.float64 and np.allclose(y, [4.0, 7.0])
    assert np.allclose(L.matmat(np.eye(2)), [[2.0, 1.0], [1.0, 3.0]])
    assert op.matvecs == 3


def test_unknown_solver_is_input_error(lam):
    with pytest.raises(InputError):
        eigsh(build(lam), solver="arnoldi")


def test_cupy_without_cupy_or_cuda_is_input_error(lam):
    try:
        import cupy  # noqa: F401
        have = torch.cuda.is_available()
    except ImportError:
        have = False
    if have:
        pytest.skip("CuPy and CUDA are present")
    with pytest.raises(InputError, match="`solver` cupy needs CuPy and a CUDA device"):
        eigsh(build(lam), solver="cupy")


@pytest.mark.cuda
def test_cupy_agrees_with_exact(lam):
    pytest.importorskip("cupy")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    op = build(lam)
    op = DenseOperator(op.matrix.cuda())
    r = eigsh(op, k=2, which="both", solver="cupy", tol=1e-8, return_vectors=True)
    s = np.sort(lam)
    np.testing.assert_allclose(r.eigenvalues, [s[-1], s[-2], s[1], s[0]], rtol=1e-6)
    assert r.eigenvectors.device.type == "cuda" and r.matvecs == op.matvecs
