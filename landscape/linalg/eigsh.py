"""One entry point for extreme eigenpairs, three backends.

- "lanczos": :func:`landscape.linalg.lanczos.lanczos` (ours, any device).
- "scipy": ARPACK's implicitly restarted Lanczos (Lehoucq, Sorensen, Yang 1998) through
  ``scipy.sparse.linalg.eigsh`` on a float64 host view of the operator.
- "cupy": ``cupyx.scipy.sparse.linalg.eigsh`` (thick-restart Lanczos) on the GPU, vectors
  passed between torch and CuPy through DLPack without copies.

For scipy and cupy the residuals are the true ||A x_i - theta_i x_i|| / max(|theta_i|,
floor), measured with one extra block product (counted in ``matvecs``).
"""

from __future__ import annotations

import numpy as np
import torch

from landscape.errors import InputError
from landscape.linalg.lanczos import (
    WHICH,
    EigResult,
    Progress,
    lanczos,
    relative_residuals,
    select_indices,
)
from landscape.linalg.operator import SymmetricOperator, as_numpy_linear_operator

__all__ = ["eigsh", "dense_eigh", "SOLVERS", "DENSE_LIMIT"]

SOLVERS = ("lanczos", "scipy", "cupy")
_ARPACK_WHICH = {"largest": "LA", "smallest": "SA", "both": "BE", "magnitude": "LM"}
DENSE_LIMIT = 4096  # the most parameters for which the whole matrix is formed (128 MiB float64)


def eigsh(
    op: SymmetricOperator,
    k: int = 1,
    which: str = "largest",
    tol: float = 1e-6,
    seed: int = 0,
    solver: str = "lanczos",
    return_vectors: bool = False,
    progress: Progress | None = None,
    max_rows: int | None = None,
) -> EigResult:
    """k extreme eigenpairs of ``op`` with the chosen ``solver`` (same conventions as
    :func:`~landscape.linalg.lanczos.lanczos`: eigenvalues descending; "both" means k from
    each end). Start vectors derive from ``seed``. Raises InputError for an unknown solver,
    or for "cupy" without CuPy or a CUDA device. ``max_rows`` bounds Lanczos' basis."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if solver == "lanczos":
        return lanczos(op, k=k, which=which, tol=tol, seed=seed,
                       return_vectors=return_vectors, progress=progress, max_rows=max_rows)
    if solver == "scipy":
        return _scipy(op, k, which, tol, seed, return_vectors)
    if solver == "cupy":
        return _cupy(op, k, which, tol, seed, return_vectors)
    raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")


def _start_vector(P: int, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(P, generator=gen, dtype=torch.float64).numpy()


def _finish(op: SymmetricOperator, theta: np.ndarray, X: torch.Tensor, k: int, which: str,
            tol: float, matvecs: int, steps: int, return_vectors: bool,
            solver: str) -> EigResult:
    """Select and sort, measure true residuals with one block product, build the result."""
    idx = select_indices(theta, k, which)
    theta = np.asarray(theta, dtype=np.float64)[idx]
    X = X[torch.as_tensor(idx.copy(), device=X.device)].to(device=op.device, dtype=op.dtype)
    before = op.matvecs
    AX = op(X)
    matvecs += op.matvecs - before
    t = torch.as_tensor(theta, device=AX.device, dtype=AX.dtype)
    res_abs = (AX - t[:, None] * X).double().norm(dim=1).cpu().numpy()
    res = relative_residuals(res_abs, theta, op.dtype)
    return EigResult(
        eigenvalues=theta, residuals=res, eigenvectors=X if return_vectors else None,
        matvecs=matvecs, steps=steps, converged=bool(np.all(res <= tol)), solver=solver,
    )


def _dense(op: SymmetricOperator, k: int, which: str, tol: float, return_vectors: bool,
           solver: str) -> EigResult:
    """Small problems (k too close to P for ARPACK): form A from P products, eigh."""
    before = op.matvecs
    A = op(torch.eye(op.size, dtype=op.dtype, device=op.device)).double().cpu().numpy()
    theta, U = np.linalg.eigh((A + A.T) / 2)
    X = torch.from_numpy(np.ascontiguousarray(U.T))
    return _finish(op, theta, X, k, which, tol, op.matvecs - before, op.size,
                   return_vectors, solver)


def dense_eigh(op: SymmetricOperator, return_vectors: bool = False, chunk: int = 256,
               progress: Progress | None = None) -> EigResult:
    """Every eigenpair of ``op``: A = op(I) from P products (``chunk`` rows at a time), then
    ``numpy.linalg.eigh`` of (A + Aᵀ)/2 in float64. Eigenvalues descending; residuals are the
    true ||A x - θ x|| / max(|θ|, floor) on the formed matrix (no further products)."""
    P = int(op.size)
    if P > DENSE_LIMIT:
        raise InputError(f"the dense eigendecomposition is limited to {DENSE_LIMIT} parameters, "
                         f"this operator has {P}")
    before = op.matvecs
    rows = []
    for i in range(0, P, chunk):
        k = min(chunk, P - i)
        E = torch.zeros(k, P, dtype=op.dtype, device=op.device)
        E[torch.arange(k), torch.arange(i, i + k)] = 1
        rows.append(op(E).double().cpu().numpy())
        if progress is not None:
            progress(i + k, P)
    A = np.concatenate(rows)
    A = (A + A.T) / 2
    theta, U = np.linalg.eigh(A)
    theta, U = theta[::-1].copy(), np.ascontiguousarray(U[:, ::-1])
    res_abs = np.linalg.norm(A @ U - U * theta, axis=0)
    res = relative_residuals(res_abs, theta, op.dtype)
    X = torch.from_numpy(np.ascontiguousarray(U.T)).to(op.dtype) if return_vectors else None
    return EigResult(eigenvalues=theta, residuals=res, eigenvectors=X,
                     matvecs=op.matvecs - before, steps=P, converged=True, solver="dense")


def _scipy(op: SymmetricOperator, k: int, which: str, tol: float, seed: int,
           return_vectors: bool) -> EigResult:
    from scipy.sparse.linalg import ArpackNoConvergence
    from scipy.sparse.linalg import eigsh as arpack_eigsh

    P = int(op.size)
    n = min(2 * k if which == "both" else k, P)
    if n >= P - 1:
        return _dense(op, k, which, tol, return_vectors, "scipy")
    before = op.matvecs
    try:
        theta, U = arpack_eigsh(as_numpy_linear_operator(op), k=n, which=_ARPACK_WHICH[which],
                                tol=tol, v0=_start_vector(P, seed))
    except ArpackNoConvergence as exc:  # keep what converged; residuals tell the rest
        theta, U = exc.eigenvalues, exc.eigenvectors
    X = torch.from_numpy(np.ascontiguousarray(np.asarray(U).T))
    used = op.matvecs - before
    return _finish(op, np.asarray(theta), X, k, which, tol, used, used, return_vectors, "scipy")


def _cupy(op: SymmetricOperator, k: int, which: str, tol: float, seed: int,
          return_vectors: bool) -> EigResult:
    try:
        import cupy
        from cupyx.scipy.sparse.linalg import LinearOperator
        from cupyx.scipy.sparse.linalg import eigsh as cupy_eigsh
    except ImportError as exc:
        raise InputError("`solver` cupy needs CuPy and a CUDA device (pip install "
                         "cupy-cuda12x); use `solver` lanczos or scipy instead") from exc
    if torch.device(op.device).type != "cuda" or not torch.cuda.is_available():
        raise InputError("`solver` cupy needs CuPy and a CUDA device: the operator lives on "
                         f"{op.device}; use `device` cuda, or `solver` lanczos/scipy")
    P = int(op.size)
    n = min(2 * k if which == "both" else k, P)
    if n >= P - 1:
        return _dense(op, k, which, tol, return_vectors, "cupy")

    def apply(x: cupy.ndarray) -> cupy.ndarray:
        block = torch.from_dlpack(x).reshape(P, -1).T  # (k, P) view, no copy
        out = op(block.to(op.dtype).contiguous())
        return cupy.from_dlpack(out.T.contiguous()).reshape(x.shape)

    np_dtype = np.float32 if op.dtype == torch.float32 else np.float64
    lin = LinearOperator((P, P), matvec=apply, matmat=apply, dtype=np_dtype)
    v0 = cupy.asarray(_start_vector(P, seed).astype(np_dtype))
    before = op.matvecs
    parts = [("LA", n // 2 + n % 2), ("SA", n // 2)] if which == "both" else \
        [({"largest": "LA", "smallest": "SA", "magnitude": "LM"}[which], n)]
    thetas, vecs = [], []
    for cwhich, count in parts:
        if count == 0:
            continue
        theta, U = cupy_eigsh(lin, k=count, which=cwhich, tol=tol, v0=v0)
        thetas.append(cupy.asnumpy(theta))
        vecs.append(torch.from_dlpack(U.T.copy()))
    used = op.matvecs - before
    return _finish(op, np.concatenate(thetas), torch.cat(vecs), k, which, tol, used, used,
                   return_vectors, "cupy")
