"""Our own tool: ``landscape`` (Problem -> Hessian operator -> lanczos / slq / trace)."""

from __future__ import annotations

import numpy as np
import torch

import landscape
from benchmarks.adapters import Settings, Task
from benchmarks.adapters.common import rademacher
from benchmarks.measure import Answer
from benchmarks.workloads import Workload
from landscape.curvature import make_operator
from landscape.linalg.lanczos import lanczos
from landscape.linalg.slq import slq
from landscape.linalg.trace import hutchinson, hutchpp, xtrace
from landscape.problem import Problem

NAME = "landscape"


def available() -> bool:
    """Always: it is the package under test."""
    return True


def version() -> str:
    """The installed landscape version."""
    return getattr(landscape, "__version__", "0.1.0")


def problem(w: Workload, dtype: torch.dtype = torch.float32) -> Problem:
    """The workload as a landscape Problem (whole-data-set mean cross-entropy)."""
    return Problem(w.model(), w.x, w.y, loss="cross-entropy", batch_size=w.batch_size,
                   device=w.device, dtype=dtype)


def tasks(w: Workload, s: Settings) -> dict[str, Task]:
    """Every question, answered by landscape."""
    pr = problem(w)
    v1 = rademacher(1, pr.size, w.device, s.seed)
    vk = rademacher(s.block_k, pr.size, w.device, s.seed + 1)

    def top(k: int) -> Task:
        def run() -> Answer:
            op = make_operator(pr, "hessian")
            r = lanczos(op, k=k, which="largest", tol=s.tol, seed=s.seed)
            return Answer(np.asarray(r.eigenvalues), op.matvecs,
                          note="" if r.converged else "not converged")
        return run

    def trace(method: str) -> Task:
        def run() -> Answer:
            op = make_operator(pr, "hessian")
            if method == "hutchinson":
                r = hutchinson(op, probes=s.trace_budget, block=s.trace_budget, seed=s.seed)
            elif method == "hutchpp":
                r = hutchpp(op, matvecs=s.trace_budget, seed=s.seed)
            else:
                r = xtrace(op, matvecs=s.trace_budget, seed=s.seed)
            return Answer(np.array([r.estimate]), op.matvecs)
        return run

    def density() -> Answer:
        op = make_operator(pr, "hessian")
        r = slq(op, runs=1, steps=s.slq_steps, seed=s.seed)
        return Answer(np.asarray(r.nodes[0]), op.matvecs, weights=np.asarray(r.weights[0]))

    def apply(V: torch.Tensor, single: bool) -> Task:
        # Built once outside the timed call, as every adapter builds its tool's operator (and
        # PyHessian its gradient graph): the warm-up run builds the kept gradient graphs.
        op = make_operator(pr, "hessian")

        def run() -> Answer:
            before = op.matvecs
            if single:
                for v in V:
                    op(v[None])
            else:
                op(V)
            return Answer(matvecs=op.matvecs - before)
        return run

    def gradient() -> Answer:
        pr.loss_and_grad(pr.theta)  # θ passed explicitly: computed, not the remembered value
        return Answer()

    return {
        "top1": top(1), "top5": top(5),
        "trace:hutchinson": trace("hutchinson"), "trace:hutchpp": trace("hutchpp"),
        "trace:xtrace": trace("xtrace"), "slq": density,
        "hvp": apply(v1, True), "grad": gradient,
        "block": apply(vk, False), "singles": apply(vk, True),
    }
