"""The abstract symmetric operator every algorithm in ``landscape.linalg`` works on.

An operator ``A`` of size P maps a block of k row vectors ``V`` (k, P) to ``V A`` (k, P)
(A is symmetric, so this is ``(A V^T)^T``). It counts the single-vector products it has
made in ``matvecs``, so a block of k vectors costs k.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

__all__ = ["SymmetricOperator", "DenseOperator", "as_numpy_linear_operator"]


@runtime_checkable
class SymmetricOperator(Protocol):
    """A symmetric linear map R^P -> R^P applied to blocks of row vectors.

    Attributes: ``size`` (P), ``dtype`` and ``device`` of the vectors it accepts, and
    ``matvecs``, the number of single-vector products made so far.
    """

    size: int
    dtype: torch.dtype
    device: torch.device
    matvecs: int

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        """Map a block ``V`` of shape (k, P) to ``V A`` of shape (k, P)."""
        ...


class DenseOperator:
    """A symmetric (P, P) tensor as a :class:`SymmetricOperator` (tests, small problems).

    ``symmetrize=True`` replaces the matrix by (M + M^T)/2; otherwise it must already be
    symmetric (checked to a tolerance of 1e-6 relative to its largest entry).
    """

    def __init__(self, matrix: torch.Tensor | np.ndarray, symmetrize: bool = False) -> None:
        M = torch.as_tensor(matrix)
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise ValueError(f"DenseOperator needs a square matrix, got shape {tuple(M.shape)}")
        if not M.is_floating_point():
            M = M.to(torch.float64)
        if symmetrize:
            M = (M + M.T) / 2
        else:
            scale = float(M.abs().max()) if M.numel() else 0.0
            if float((M - M.T).abs().max()) > 1e-6 * max(scale, 1e-300):
                raise ValueError("DenseOperator needs a symmetric matrix (or symmetrize=True)")
        self.matrix = M
        self.size = int(M.shape[0])
        self.dtype = M.dtype
        self.device = M.device
        self.matvecs = 0

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        if V.ndim != 2 or V.shape[1] != self.size:
            raise ValueError(f"expected a block of shape (k, {self.size}), got {tuple(V.shape)}")
        self.matvecs += int(V.shape[0])
        return V.to(self.dtype) @ self.matrix


def as_numpy_linear_operator(op: SymmetricOperator) -> LinearOperator:
    """Wrap ``op`` as a float64 ``scipy.sparse.linalg.LinearOperator`` of shape (P, P).

    Inputs are converted to ``op.dtype`` on ``op.device``; outputs come back as float64
    numpy arrays. ``matmat`` passes the whole block to ``op`` in one call.
    """
    P = int(op.size)

    def _apply(X: np.ndarray) -> np.ndarray:
        # X is (P, k) column vectors; the operator takes row vectors.
        block = torch.from_numpy(np.ascontiguousarray(np.asarray(X, dtype=np.float64).T))
        out = op(block.to(device=op.device, dtype=op.dtype))
        return out.detach().to("cpu", torch.float64).numpy().T

    def matvec(x: np.ndarray) -> np.ndarray:
        return _apply(np.asarray(x).reshape(P, 1)).reshape(-1)

    return LinearOperator(
        shape=(P, P), matvec=matvec, rmatvec=matvec, matmat=_apply, rmatmat=_apply,
        dtype=np.float64,
    )
