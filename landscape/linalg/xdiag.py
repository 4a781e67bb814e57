"""XDiag (Epperly, Tropp, Webber 2024, SIMAX, section 2.4): the exchangeable Diag++.

With s Rademacher test vectors w_i, Y = A W = Q R and Q_(i) the basis of Y with column i left
out, each w_i is the Hutchinson probe of the part of A that Q_(i) misses:

    d_i = diag(Q_(i) Q_(i)^T A) + w_i ⊙ (I - Q_(i) Q_(i)^T) A w_i,

unbiased for diag(A) because w_i is independent of Q_(i) and E[w ⊙ M w] = diag(M). Leaving
w_i out removes the direction q_i = Q r_i (r_i the normalised column i of R^{-T}), so with
Z = A Q (A symmetric): diag(Q_(i) Q_(i)^T A) = diag(Q Z^T) - q_i ⊙ Z r_i, and since A w_i lies
in the span of Q, (I - Q_(i) Q_(i)^T) A w_i = q_i (r_i^T R e_i). The estimate is mean_i d_i
(2s products); the error bar is the spread of the d_i per entry, std_i(d_i) / sqrt(s), the
paper's estimate (for XTrace the same estimate ran about 20% low: see ``xtrace``). When Y is
numerically rank-deficient (singular values below 100 eps of the largest), the sketch already
spans A's range, every d_i is diag(P_Y A) = diag(A) up to rounding, and the error bar is 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from landscape.linalg.operator import SymmetricOperator
from landscape.linalg.trace import Progress, _orth_rows, _probes


def xdiag(
    op: SymmetricOperator,
    matvecs: int = 64,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """diag(A) by XDiag with s = matvecs // 2 test vectors; returns (estimate, stderr per entry,
    matvecs spent). Rademacher probes only (the leave-one-out identity needs w ⊙ w = 1)."""
    s = min(max(matvecs // 2, 2), op.size)
    gen = torch.Generator().manual_seed(int(seed))
    W = _probes(gen, s, op, "rademacher")
    Y = op(W)
    if progress is not None:
        progress(s, 2 * s)
    Q, R = _orth_rows(Y)  # rows: Y^T = Q^T R
    Z = op(Q)
    if progress is not None:
        progress(2 * s, 2 * s)
    Rd = R.double()
    U, sv, _ = torch.linalg.svd(Rd)
    rank = int((sv > sv[0] * 100 * torch.finfo(op.dtype).eps).sum())
    if rank < s:  # the sketch holds all of A's range: diag(P_Y A) is the diagonal, no error
        Ur = U[:, :rank].to(Q.dtype)
        est = ((Ur.T @ Q) * (Ur.T @ Z)).sum(dim=0).double()
        return est.cpu().numpy(), np.zeros(op.size), 2 * s
    X = torch.linalg.inv(Rd).T  # R^{-T}
    X = X / X.norm(dim=0, keepdim=True)
    c = (X * Rd).sum(dim=0)  # r_i^T R e_i
    Xq = X.to(Q.dtype)
    Qt = Xq.T @ Q  # row i: q_i = Q r_i
    Zt = Xq.T @ Z  # row i: A q_i
    base = (Q * Z).sum(dim=0).double()  # diag(Q Q^T A)
    terms = base[None] - (Qt * Zt).double() + c[:, None].to(Qt.device) * (W * Qt).double()
    est = terms.mean(dim=0)
    stderr = terms.std(dim=0, unbiased=True) / math.sqrt(s)
    return est.cpu().numpy(), stderr.cpu().numpy(), 2 * s
