"""hessian-eigenthings (``pip install hessian-eigenthings``, 1.0 API): HessianOperator plus
its lanczos, deflated power iteration, hutchinson / hutch++ and spectral_density.

Matvecs are counted by wrapping the operator's ``matvec``. Its ``lanczos`` runs a fixed number
of steps (default ``2k``), which is what a user gets from ``lanczos(op, k=...)``: ``top1`` and
``top5``. Its best honest configuration, ``top1:steps`` and ``top5:steps``, is Lanczos with
enough steps: the fewest at which it reports all k Ritz pairs converged to ``tol`` (found in the
first, warm-up, call from one longer run: :func:`fewest_steps`); the timed calls run that step
count once, as a user who knew it would.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.adapters import Settings, Task
from benchmarks.adapters.common import (
    Counter,
    autograd_gradient,
    package_available,
    rademacher,
)
from benchmarks.measure import Answer
from benchmarks.workloads import Workload

NAME = "eigenthings"


def available() -> bool:
    """True when ``hessian_eigenthings`` imports."""
    return package_available("hessian_eigenthings")


def version() -> str:
    """The installed hessian-eigenthings version."""
    import hessian_eigenthings
    return hessian_eigenthings.__version__


def tasks(w: Workload, s: Settings) -> dict[str, Task]:
    """Top-k (Lanczos and power iteration), traces, density, HVP and gradient cost."""
    import hessian_eigenthings as he

    model = w.model()
    batches = w.batches()
    counter = Counter()

    def make() -> he.HessianOperator:
        op = he.HessianOperator(model, batches, he.supervised_loss(w.criterion),
                                full_dataset=True)
        op.matvec = counter.wrap(op.matvec)
        counter.take()
        return op

    def top(k: int, power: bool) -> Task:
        def run() -> Answer:
            op = make()
            if power:
                r = he.deflated_power_iteration(op, k=k, max_iter=100, tol=s.tol, seed=s.seed)
            else:
                r = he.lanczos(op, k=k, tol=s.tol, which="LA", seed=s.seed)
            vals = np.sort(r.eigenvalues.detach().cpu().double().numpy())[::-1]
            ok = bool(r.converged.all()) if hasattr(r.converged, "all") else bool(r.converged)
            return Answer(vals, counter.take(), note="" if ok else "reports not converged")
        return run

    def fewest_steps(k: int) -> int:
        """The fewest Lanczos steps at which ``lanczos(max_iter=m)`` reports all k converged:
        one run of up to 24, then 50 steps (reorthogonalised, as ``lanczos`` is up to 50), whose
        first m steps are those of an m-step run from the same seed, each prefix tested with
        ``lanczos``'s own criterion |β_m s_m,i| < tol |θ_i|; 50 when none is."""
        from hessian_eigenthings.algorithms.lanczos import lanczos_tridiagonal

        op = make()
        gen = torch.Generator().manual_seed(s.seed)
        v0 = torch.randn(op.size, dtype=op.dtype, generator=gen).to(op.device)
        for n in (min(24, op.size - 1), min(50, op.size - 1)):
            td = lanczos_tridiagonal(op, v0, n, reorthogonalize=True)
            a, b = td.alphas.double(), td.betas.double()
            for m in range(k, td.iterations + 1):
                T = torch.diag(a[:m]) + torch.diag(b[:m - 1], 1) + torch.diag(b[:m - 1], -1)
                theta, vecs = torch.linalg.eigh(T)
                top = torch.argsort(theta, descending=True)[:k]
                beta = float(b[m - 1]) if m < td.iterations else td.last_beta
                if bool((vecs[-1, top].abs() * beta < s.tol * theta[top].abs()).all()):
                    return m
        return n

    def top_steps(k: int) -> Task:
        steps: list[int] = []  # found in the first call

        def run() -> Answer:
            if not steps:
                steps.append(fewest_steps(k))
            r = he.lanczos(make(), k=k, max_iter=steps[0], tol=s.tol, which="LA", seed=s.seed)
            vals = np.sort(r.eigenvalues.detach().cpu().double().numpy())[::-1]
            ok = r.converged.all() if hasattr(r.converged, "all") else r.converged
            note = f"{steps[0]} steps" + ("" if bool(ok) else ", reports not converged")
            return Answer(vals, counter.take(), note=note)
        return run

    def trace(method: str) -> Task:
        def run() -> Answer:
            op = make()
            if method == "hutchinson":
                r = he.hutchinson(op, num_samples=s.trace_budget, seed=s.seed)
            else:
                r = he.hutch_plus_plus(op, num_matvecs=s.trace_budget, seed=s.seed)
            return Answer(np.array([float(r.estimate)]), counter.take())
        return run

    def density() -> Answer:
        r = he.spectral_density(make(), num_runs=1, lanczos_steps=s.slq_steps, seed=s.seed)
        nodes = r.raw_eigenvalues[0].detach().cpu().double().numpy()
        weights = r.raw_weights[0].detach().cpu().double().numpy()
        keep = np.isfinite(nodes)
        return Answer(nodes[keep], counter.take(), weights=weights[keep])

    def apply(n: int, seed: int) -> Task:
        op = make()
        V = rademacher(n, op.size, w.device, seed)

        def run() -> Answer:
            for v in V:
                op.matvec(v)
            return Answer(matvecs=counter.take())
        return run

    def gradient() -> Answer:
        autograd_gradient(model, batches, w.criterion)
        return Answer()

    return {
        "top1": top(1, False), "top1:power": top(1, True),
        "top5": top(5, False), "top5:power": top(5, True),
        "top1:steps": top_steps(1), "top5:steps": top_steps(5),
        "trace:hutchinson": trace("hutchinson"), "trace:hutchpp": trace("hutchpp"),
        "slq": density, "hvp": apply(1, s.seed), "grad": gradient,
        "singles": apply(s.block_k, s.seed + 1),
    }
