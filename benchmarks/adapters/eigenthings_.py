"""hessian-eigenthings (``pip install hessian-eigenthings``, 1.0 API): HessianOperator plus
its lanczos, deflated power iteration, hutchinson / hutch++ and spectral_density.

Matvecs are counted by wrapping the operator's ``matvec``. Its ``lanczos`` runs a fixed number of
steps (default ``2k``), which is what a user gets from ``lanczos(op, k=...)``.
"""

from __future__ import annotations

import numpy as np

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
        "trace:hutchinson": trace("hutchinson"), "trace:hutchpp": trace("hutchpp"),
        "slq": density, "hvp": apply(1, s.seed), "grad": gradient,
        "singles": apply(s.block_k, s.seed + 1),
    }
