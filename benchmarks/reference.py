"""The answers accuracy is measured against.

Workload 1 (``exact``): the dense float64 Hessian of the whole-data-set loss (columns by autograd
double backward, see :func:`dense_hessian`), its full
spectrum and trace. Otherwise: a high-precision run of our own, Lanczos on the float64
problem at tol 1e-8 (capped at ``max_steps``), and a large-budget XTrace for the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.adapters.landscape_ import problem
from benchmarks.workloads import Workload
from landscape.curvature import make_operator
from landscape.linalg.lanczos import lanczos
from landscape.linalg.trace import hutchinson, xtrace


@dataclass
class Reference:
    """Top eigenvalues (descending), the trace (with its standard error, 0 when exact), the
    full spectrum when known, and how the reference was obtained."""

    top: np.ndarray
    trace: float
    trace_stderr: float
    spectrum: np.ndarray | None
    how: str


def dense_hessian(loss: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor
                  ) -> torch.Tensor:
    """∇²loss(θ) in float64, one column per unit vector: H e_i = ∂/∂θ (∇loss(θ)ᵀ e_i), a plain
    autograd double backward (Pearlmutter 1994) through one kept gradient graph.

    Not ``torch.func.hessian`` (``jacfwd`` of ``jacrev``): on torch 2.13 that composition is
    wrong through ``layer_norm`` (1e-2 to 5e-1 relative, and asymmetric), and so is curvlinops'
    product, ``jvp`` of ``jacrev``. Returned as computed (not symmetrised), so the caller can
    check the symmetry defect."""
    leaf = theta.detach().to(torch.float64).requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
    P = leaf.numel()
    H = torch.zeros(P, P, dtype=torch.float64)
    e = torch.zeros(P, dtype=torch.float64)
    for i in range(P):  # the identity, one column at a time: one backward pass each
        e[i] = 1.0
        (col,) = torch.autograd.grad(g, leaf, e, retain_graph=True, allow_unused=True)
        if col is not None:
            H[:, i] = col
        e[i] = 0.0
    return H


def exact_hessian(w: Workload) -> np.ndarray:
    """The dense float64 Hessian of the whole-data-set mean loss (small P only), symmetrised
    after a check that its symmetry defect is at round-off (a wrong product would show here)."""
    pr = problem(w, torch.float64)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return sum(wt * pr.batch_loss(theta, x, y) for wt, x, y in pr.iter_batches())

    H = dense_hessian(loss, pr.theta)
    defect = float((H - H.T).abs().max() / H.abs().max().clamp_min(1e-300))
    if defect > 1e-8:
        raise RuntimeError(f"the reference Hessian is not symmetric (defect {defect:.1e})")
    return ((H + H.T) / 2).numpy()


BIG = 5_000_000  # parameters beyond which the reference runs in float32 (memory and time)


def _xtrace_fits(w: Workload, budget: int) -> bool:
    """Whether XTrace's (budget, P) float32 blocks (about three of them) fit in a quarter of
    the free GPU memory; always on the CPU."""
    if w.device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(w.device)
    return 3 * budget * w.n_params * 4 < free / 4


def reference(w: Workload, max_steps: int = 150, trace_budget: int = 400,
              trace: bool = True) -> Reference:
    """The reference answers for ``w`` (see module doc). Beyond ``BIG`` parameters (the GPU-only
    workloads) Lanczos runs in float32 at tol 1e-6, and where XTrace's blocks would not fit,
    the trace is Hutchinson's with the same budget (its standard error is reported); without
    ``trace``, no trace reference (NaN)."""
    if w.exact:
        ev = np.linalg.eigvalsh(exact_hessian(w))
        return Reference(ev[::-1][:5].copy(), float(ev.sum()), 0.0, ev,
                         "exact float64 Hessian (numpy.linalg.eigvalsh)")
    big = w.n_params > BIG
    dtype, tol = (torch.float32, 1e-6) if big else (torch.float64, 1e-8)
    op = make_operator(problem(w, dtype), "hessian")
    r = lanczos(op, k=5, which="largest", tol=tol, max_steps=100 if big else max_steps,
                seed=123)
    del op
    top = (f"landscape Lanczos {str(dtype).split('.')[-1]} tol {tol:g} ({r.steps} steps, "
           f"max residual {float(np.max(r.residuals)):.1e})")
    if not trace:
        return Reference(np.asarray(r.eigenvalues), float("nan"), float("nan"), None, top)
    op = make_operator(problem(w), "hessian")
    if _xtrace_fits(w, trace_budget):
        t = xtrace(op, matvecs=trace_budget, seed=123)
        how = f"{top}; XTrace {trace_budget} matvecs (stderr {t.stderr:.3g})"
    else:
        t = hutchinson(op, probes=trace_budget, block=16, seed=123)
        how = f"{top}; Hutchinson {trace_budget} probes (stderr {t.stderr:.3g}: XTrace's blocks " \
              "do not fit)"
    return Reference(np.asarray(r.eigenvalues), t.estimate, t.stderr, None, how)


def wasserstein1(nodes: np.ndarray, weights: np.ndarray, spectrum: np.ndarray) -> float:
    """1-Wasserstein distance between sum_j w_j delta(nodes_j) (weights normalised) and the
    uniform measure on ``spectrum``, divided by the spectral range."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0, None)
    w = w / w.sum()
    a = np.concatenate([np.asarray(nodes, dtype=np.float64), spectrum])
    order = np.argsort(a, kind="stable")
    mass = np.concatenate([w, -np.full(spectrum.size, 1.0 / spectrum.size)])[order]
    cdf = np.cumsum(mass)[:-1]
    dist = float(np.sum(np.abs(cdf) * np.diff(a[order])))
    return dist / max(float(spectrum.max() - spectrum.min()), 1e-300)
