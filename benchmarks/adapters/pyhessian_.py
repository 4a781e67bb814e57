"""PyHessian (``pip install pyhessian``): power iteration, Hutchinson, SLQ on an nn.Module.

Matvecs are counted by wrapping its ``hessian_vector_product`` (one batch held in memory) and
``dataloader_hv_product`` (several batches). It is used as its README shows: ``data=(x, y)``
when the workload is one batch, ``dataloader=`` otherwise.

Its SLQ (``density``) calls ``torch.eig``, removed in torch 1.9, so ``slq`` fails on current
torch: that is its default. ``slq:shim`` is its best honest configuration: the same call with a
harness-side ``torch.eig`` built on ``torch.linalg.eigh`` (its tridiagonal T is symmetric),
present only during the call.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterator

import numpy as np
import torch

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

NAME = "pyhessian"


def available() -> bool:
    """True when ``pyhessian`` imports."""
    return package_available("pyhessian")


def version() -> str:
    """The installed pyhessian version."""
    return package_version("pyhessian")


@contextlib.contextmanager
def eig_shim() -> Iterator[None]:
    """``torch.eig(A, eigenvectors=True)`` as torch < 1.9 returned it ((n, 2) real and imaginary
    parts, eigenvectors), for a symmetric A, only while the block runs (torch 2 keeps a stub
    that raises)."""
    def eig(a: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        vals, vecs = torch.linalg.eigh(a)
        return torch.stack([vals, torch.zeros_like(vals)], 1), vecs

    before = getattr(torch, "eig", None)
    torch.eig = eig
    try:
        yield
    finally:
        if before is None:
            del torch.eig
        else:
            torch.eig = before


def tasks(w: Workload, s: Settings) -> dict[str, Task]:
    """Top-k (power iteration), trace (Hutchinson), density (SLQ), HVP and gradient cost."""
    ph = importlib.import_module("pyhessian.hessian")  # the package shadows it by the class

    counter = Counter()
    if not getattr(ph, "_bench_counted", False):
        ph.hessian_vector_product = counter.wrap(ph.hessian_vector_product)
        ph._bench_counted = True
        ph._bench_counter = counter
    counter = ph._bench_counter
    model = w.model()
    batches = w.batches()
    cuda = w.device.type == "cuda"
    params = [p for p in model.parameters() if p.requires_grad]

    def make() -> object:
        model.zero_grad(set_to_none=True)
        if len(batches) == 1:
            h = ph.hessian(model, w.criterion, data=batches[0], cuda=cuda)
        else:
            h = ph.hessian(model, w.criterion, dataloader=batches, cuda=cuda)
            h.dataloader_hv_product = counter.wrap(h.dataloader_hv_product)
        counter.take()
        return h

    def top(k: int) -> Task:
        def run() -> Answer:
            vals, _ = make().eigenvalues(maxIter=100, tol=s.tol, top_n=k)
            return Answer(np.sort(np.asarray(vals))[::-1], counter.take())
        return run

    def trace(tol: float, budget: int) -> Task:
        def run() -> Answer:
            samples = make().trace(maxIter=budget, tol=tol)
            return Answer(np.array([float(np.mean(samples))]), counter.take())
        return run

    def density(shim: bool) -> Task:
        def run() -> Answer:
            with eig_shim() if shim else contextlib.nullcontext():
                nodes, weights = make().density(iter=s.slq_steps, n_v=1)
            return Answer(np.asarray(nodes[0]), counter.take(), weights=np.asarray(weights[0]))
        return run

    def vectors(n: int, seed: int) -> list[list[torch.Tensor]]:
        V = rademacher(n, sum(p.numel() for p in params), w.device, seed)
        return [[t.view_as(p) for t, p in zip(v.split([p.numel() for p in params]), params)]
                for v in V]

    def apply(n: int, seed: int) -> Task:
        vs = vectors(n, seed)
        h = make()

        def run() -> Answer:
            for v in vs:
                if h.full_dataset:
                    h.dataloader_hv_product(v)
                else:
                    ph.hessian_vector_product(h.gradsH, h.params, v)
            return Answer(matvecs=counter.take())
        return run

    def gradient() -> Answer:
        autograd_gradient(model, batches, w.criterion)
        return Answer()

    return {
        "top1": top(1), "top5": top(5),
        "trace:hutchinson": trace(-math.inf, s.trace_budget),
        "trace:default": trace(1e-3, 100),
        "slq": density(False), "slq:shim": density(True), "hvp": apply(1, s.seed), "grad": gradient,
        "singles": apply(s.block_k, s.seed + 1),
    }
