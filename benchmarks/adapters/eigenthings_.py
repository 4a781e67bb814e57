"""hessian-eigenthings (``pip install hessian-eigenthings``, 1.0 API): HessianOperator plus
its lanczos, deflated power iteration, hutchinson / hutch++ and spectral_density.

Matvecs are counted by wrapping the operator's ``matvec``. Its ``lanczos`` runs a fixed number
of steps (default ``2k``), which is what a user gets from ``lanczos(op, k=...)``: ``top1`` and
``top5``. Its best honest configuration, ``top1:steps`` and ``top5:steps``, is Lanczos with
enough steps and full reorthogonalisation (its default beyond 50 steps drops it): the fewest
steps at which it reports all k Ritz pairs converged to ``tol``, found in the first (warm-up)
call by ``fewest_steps``; the timed calls run that step count once, as a user who knew it
would.
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

    def answer(r: object, *said: str) -> Answer:
        """Its eigenvalues, descending, the products counted, and whether it says converged."""
        vals = np.sort(r.eigenvalues.detach().cpu().double().numpy())[::-1]
        ok = bool(r.converged.all()) if hasattr(r.converged, "all") else bool(r.converged)
        note = ", ".join(said + (() if ok else ("reports not converged",)))
        return Answer(vals, counter.take(), note=note)

    def top(k: int, power: bool) -> Task:
        def run() -> Answer:
            op = make()
            if power:
                r = he.deflated_power_iteration(op, k=k, max_iter=100, tol=s.tol, seed=s.seed)
            else:
                r = he.lanczos(op, k=k, tol=s.tol, which="LA", seed=s.seed)
            return answer(r)
        return run

    def fewest_steps(k: int, most: int = 150) -> int:
        """The fewest Lanczos steps m at which ``lanczos(max_iter=m, reorthogonalize=True)``
        reports all k converged: its iteration (same start vector, modified Gram-Schmidt against
        every basis vector) run here one step at a time, each m tested with its own criterion
        |β_m s_m,i| < tol |θ_i|, so the search costs m products; the last m tried (``most``,
        or P - 1, the most ``lanczos`` takes) when none is."""
        op = make()
        gen = torch.Generator().manual_seed(s.seed)
        v = torch.randn(op.size, dtype=op.dtype, generator=gen).to(op.device)
        basis, alphas, betas = [v / v.norm()], [], []
        last = min(most, op.size - 1)
        for m in range(1, last + 1):
            av = op.matvec(basis[-1])
            if len(basis) > 1:
                av = av - betas[-1] * basis[-2]
            alphas.append(float(basis[-1] @ av))
            av = av - alphas[-1] * basis[-1]
            for q in basis:
                av = av - (q @ av) * q
            beta = float(av.norm())
            if m >= k:
                T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
                if m > 1:
                    off = torch.tensor(betas, dtype=torch.float64)
                    T = T + torch.diag(off, 1) + torch.diag(off, -1)
                theta, vecs = torch.linalg.eigh(T)
                top = torch.argsort(theta, descending=True)[:k]
                if bool((vecs[-1, top].abs() * beta < s.tol * theta[top].abs()).all()):
                    return m
            betas.append(beta)
            basis.append(av / beta)
        return last

    def top_steps(k: int) -> Task:
        steps: list[int] = []  # found in the first call

        def run() -> Answer:
            if not steps:
                steps.append(fewest_steps(k))
            r = he.lanczos(make(), k=k, max_iter=steps[0], tol=s.tol, which="LA", seed=s.seed,
                           reorthogonalize=True)
            return answer(r, f"{steps[0]} steps")
        run.prepares = True  # the search is the warm-up's: never time the first call
        run.fewest = lambda: fewest_steps(k)  # the count alone (benchmarks/topk_seeds.py)
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
