"""A check that the curvature operator itself is right, before an analysis trusts it.

Two seeded random unit probes u, v give
- the symmetry defect |uᵀHv − vᵀHu| / (‖u‖‖Hv‖), which is round-off for a true Hessian;
- the finite-difference gap ‖Hv − (∇L(θ + εv) − ∇L(θ − εv)) / 2ε‖ / ‖Hv‖, the central difference
  of the gradient having error O(ε²) (Nocedal and Wright 2006, §8.1), ε = (3·u_mach)^{1/3}·(1 +
  ‖θ‖∞) balancing it against round-off.
Autograd has wrong second derivatives for some layers (on torch 2.13, jacrev-of-jacrev through
``layer_norm`` is 1e-2 to 5e-1 off); a model that hits one shows a gap far beyond what the dtype
allows. It costs two products and two gradients on an operator of its own, so the analysis's
matvec count and random draws are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .curvature import make_operator
from .problem import Problem

# what each dtype allows: (symmetry defect, finite-difference gap)
LIMITS = {torch.float64: (1e-8, 1e-4), torch.float32: (1e-3, 5e-2)}


@dataclass
class Verification:
    """The two defects and whether either is beyond what the dtype allows."""

    symmetry: float
    fd_gap: float
    symmetry_limit: float
    fd_limit: float

    @property
    def ok(self) -> bool:
        return self.symmetry <= self.symmetry_limit and self.fd_gap <= self.fd_limit

    def message(self) -> str:
        return (
            f"the curvature products look wrong: symmetry defect {self.symmetry:.2g} (allowed "
            f"{self.symmetry_limit:.0g}), finite-difference gap {self.fd_gap:.2g} (allowed "
            f"{self.fd_limit:.0g}); an op in this model may have a wrong double backward, so "
            "eigenvalues and traces may be off"
        )


def verify(problem: Problem, curvature: str = "hessian", seed: int = 0) -> Verification:
    """Check ``problem``'s ``curvature`` operator on two seeded probes (see the module doc).

    Args:
        problem: the Problem whose operator is checked, at its θ.
        curvature: the operator; the finite-difference check applies to the Hessian only.
        seed: seeds the probes (a generator of its own).

    Returns:
        A :class:`Verification`.
    """
    theta = problem.theta
    gen = torch.Generator().manual_seed(seed + 7919)
    u, v = (torch.randn(problem.size, generator=gen, dtype=torch.float64) for _ in range(2))
    u, v = (t.div(t.norm()).to(theta) for t in (u, v))
    op = make_operator(problem, curvature, seed=seed)
    hu, hv = op(u), op(v)
    scale = float(u.norm() * hv.norm()) or 1.0
    symmetry = abs(float(u @ hv) - float(v @ hu)) / scale
    fd_gap = 0.0
    if curvature == "hessian":
        eps = (3 * torch.finfo(theta.dtype).eps) ** (1 / 3) * (1 + float(theta.abs().max()))
        _, g_plus = problem.loss_and_grad(theta + eps * v)
        _, g_minus = problem.loss_and_grad(theta - eps * v)
        fd = (g_plus - g_minus) / (2 * eps)
        size = max(float(hv.norm()), float(fd.norm()))
        fd_gap = float((hv - fd).norm()) / size if size > 0 else 0.0
    limits = LIMITS.get(theta.dtype, LIMITS[torch.float32])
    return Verification(symmetry, fd_gap, *limits)
