"""curvlinops (``pip install curvlinops-for-pytorch``): HessianLinearOperator with SciPy
``eigsh`` on ``to_scipy()`` for eigenvalues (as its documentation recommends), its
hutchinson / Hutch++ / XTrace trace estimators and the Papyan (2020) Lanczos spectrum.

Matvecs are counted by wrapping the operator's ``_matmat`` (width = number of columns).
"""

from __future__ import annotations

import numpy as np

from benchmarks.adapters import Settings, Task
from benchmarks.adapters.common import (
    Counter,
    autograd_gradient,
    package_available,
    package_version,
    rademacher,
)
from benchmarks.measure import Answer
from benchmarks.workloads import Workload

NAME = "curvlinops"


def available() -> bool:
    """True when ``curvlinops`` imports."""
    return package_available("curvlinops")


def version() -> str:
    """The installed curvlinops-for-pytorch version."""
    return package_version("curvlinops-for-pytorch")


def tasks(w: Workload, s: Settings) -> dict[str, Task]:
    """Top-k (eigsh), traces, density, HVP, gradient and batched-probe cost."""
    import curvlinops as cl
    from scipy.sparse.linalg import eigsh

    model = w.model()
    batches = w.batches()
    params = [p for p in model.parameters() if p.requires_grad]
    counter = Counter()

    def make() -> cl.HessianLinearOperator:
        H = cl.HessianLinearOperator(model, w.criterion, params, batches,
                                     check_deterministic=False, num_data=w.n_samples)
        H._matmat = counter.wrap(H._matmat, width=lambda M: int(M[0].shape[-1]))
        counter.take()
        return H

    def top(k: int) -> Task:
        def run() -> Answer:
            A = make().to_scipy(np.float32)
            v0 = rademacher(1, A.shape[0], w.device, s.seed)[0].cpu().numpy()
            vals = eigsh(A, k=k, which="LA", tol=s.tol, v0=v0, return_eigenvectors=False)
            return Answer(np.sort(vals.astype(np.float64))[::-1], counter.take())
        return run

    def trace(method: str) -> Task:
        fn = {"hutchinson": cl.hutchinson_trace, "hutchpp": cl.hutchpp_trace,
              "xtrace": cl.xtrace}[method]

        def run() -> Answer:
            est = fn(make(), s.trace_budget)
            return Answer(np.array([float(est)]), counter.take())
        return run

    def density() -> Answer:
        grid, dens = cl.lanczos_approximate_spectrum(make(), ncv=s.slq_steps)
        grid = grid.detach().cpu().double().numpy()
        dens = dens.detach().cpu().double().numpy()
        mass = dens * np.gradient(grid)
        return Answer(grid, counter.take(), weights=mass / mass.sum(),
                      note="grid density (+ eigsh for the spectral boundaries)")

    def apply(n: int, seed: int, block: bool) -> Task:
        H = make()
        V = rademacher(n, sum(p.numel() for p in params), w.device, seed)

        def run() -> Answer:
            if block:
                H @ V.T
            else:
                for v in V:
                    H @ v
            return Answer(matvecs=counter.take())
        return run

    def gradient() -> Answer:
        autograd_gradient(model, batches, w.criterion)
        return Answer()

    return {
        "top1": top(1), "top5": top(5),
        "trace:hutchinson": trace("hutchinson"), "trace:hutchpp": trace("hutchpp"),
        "trace:xtrace": trace("xtrace"), "slq": density,
        "hvp": apply(1, s.seed, False), "grad": gradient,
        "block": apply(s.block_k, s.seed + 1, True),
        "singles": apply(s.block_k, s.seed + 1, False),
    }
