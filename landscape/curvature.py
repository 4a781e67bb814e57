"""Curvature operators of a Problem: V (k, P) -> C V (k, P), summed exactly over the data set.

C = Σ_b (n_b/N) C_b with C_b one of
- ``hessian``: ∇²L_b v (Pearlmutter 1994): blocks of probes forward-over-reverse (``vmap`` of
  ``jvp`` of ``grad``), falling back to reverse-over-reverse where an op has no forward-mode
  rule; a single vector by autograd double backward (cheaper there, measured in benchmarks/);
- ``ggn``: Jᵀ H_z J with J = ∂z/∂θ and H_z = ∇_z² L_b (Schraudolph 2002);
- ``fisher``: Jᵀ (1/n Σ_i s_i s_iᵀ) J with s_i = ∇_z ℓ(z_i, ŷ_i), ŷ_i drawn from the model's
  predictive (Monte-Carlo Fisher; its expectation is the GGN for cross-entropy and mse);
- ``ef``: the empirical Fisher, the same with the true targets (Kunstner et al. 2019).
Probe blocks run through ``torch.func.vmap`` in sub-blocks whose size is measured on the first
call (``landscape.blocking``; ``chunk`` fixes it); every call adds k to ``matvecs``. Under
torch.distributed each rank applies its shard of batches and the block is all-reduced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp, vmap

from . import distributed, memory
from .blocking import BlockChooser
from .compat import math_attention
from .errors import InputError
from .problem import Problem

CURVATURES = ("hessian", "ggn", "fisher", "ef")
FALLBACK_NOTE = ("curvature products: an op has no forward-mode or double-backward rule (fused "
                 "SDPA flash/efficient attention?): switched to reverse-over-reverse with the "
                 "math attention kernel")


class CurvatureOperator:
    """A symmetric curvature matrix of ``problem`` at its θ, applied to blocks of vectors."""

    def __init__(
        self,
        problem: Problem,
        kind: str = "hessian",
        chunk: int | None = None,
        seed: int = 0,
        mc_samples: int = 1,
        cache_graphs: bool | None = None,
    ) -> None:
        if kind not in CURVATURES:
            raise InputError(f"unknown `curvature` {kind!r}: use one of {', '.join(CURVATURES)}")
        if kind == "fisher" and not problem.loss_fn.can_sample:
            raise InputError(
                f"`curvature` 'fisher' draws targets from the model's predictive, which loss "
                f"{problem.loss_fn.name!r} does not define (cross-entropy, mse or a classification)"
            )
        self.problem = problem
        self.kind = kind
        self.chunk = chunk
        self.seed = seed
        self.mc_samples = mc_samples
        self.size = problem.size
        self.dtype = problem.dtype
        self.device = problem.device
        self.matvecs = 0
        self.reverse_over_reverse = False
        self._theta = problem.theta
        # Keeping each batch's gradient graph makes a single-vector product one backward pass,
        # at the memory of len(batches) graphs: by default for a few batches whose graphs fit.
        if cache_graphs is None:
            cache_graphs = memory.keeps_graphs(problem)
            if not cache_graphs and 1 < problem.n_batches <= memory.CACHED_BATCHES:
                note = (f"memory: the {problem.n_batches} batches' gradient graphs would take "
                        f"more than {memory.KEEP_SHARE:.0%} of the free memory: each product "
                        f"rebuilds them (about 1.5 times slower)")
                if note not in problem.notes:
                    problem.notes.append(note)
        self.cache_graphs = cache_graphs
        self._graphs: dict[int, tuple[Tensor, Tensor]] = {}
        self.blocks = BlockChooser(self.size, self.dtype, self.device, chunk)

    # -- per-batch products ----------------------------------------------------------------
    def _hvp(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        g = grad(lambda th: self.problem.batch_loss(th, x, y))
        theta = self._theta
        if self.reverse_over_reverse:
            def hvp(v: Tensor) -> Tensor:
                return grad(lambda th: torch.dot(g(th), v))(theta)
            return hvp
        return lambda v: jvp(g, (theta,), (v,))[1]

    def _gradient_graph(self, b: int, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(θ leaf, ∇L_b(θ) with its graph); kept for the next call when ``cache_graphs``."""
        if b in self._graphs:
            return self._graphs[b]
        theta = self._theta.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.problem.batch_loss(theta, x, y)
            (g,) = torch.autograd.grad(loss, theta, create_graph=True)
        if self.cache_graphs:
            self._graphs[b] = (theta, g)
        return theta, g

    def _hvp_autograd(self, b: int, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """One H_b v by autograd double backward through the batch's gradient graph. On one vector
        it beats the transforms' forward-over-reverse (1.1 vs 3.2 ms on the demo MLP, CPU), and
        with the graph cached a product costs one backward pass."""
        theta, g = self._gradient_graph(b, x, y)
        if not g.requires_grad:  # the loss is linear in θ: no curvature
            return torch.zeros_like(v)
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(g, theta, v, retain_graph=self.cache_graphs)
        return hv

    def _output_curvature(self, z: Tensor, y: Tensor, b: int) -> Callable[[Tensor], Tensor]:
        """u -> M u on the output space, M the batch's output-space curvature (see module doc)."""
        loss_fn = self.problem.loss_fn
        if self.kind == "ggn":
            gz = grad(lambda zz: loss_fn(zz, y))
            return lambda u: jvp(gz, (z,), (u,))[1]
        n = z.shape[0]
        targets = [y] if self.kind == "ef" else self._sample_targets(z, y, b)
        # per-sample output gradients s_i = ∇_z ℓ_i: the gradient of n · (batch mean loss)
        scores = [grad(lambda zz, t=t: loss_fn(zz, t) * n)(z) for t in targets]

        def apply(u: Tensor) -> Tensor:
            out = torch.zeros_like(u)
            for s in scores:
                inner = (s * u).reshape(n, -1).sum(1)
                out = out + s * inner.reshape((n,) + (1,) * (u.dim() - 1))
            return out / (n * len(scores))

        return apply

    def _sample_targets(self, z: Tensor, y: Tensor, b: int) -> list[Tensor]:
        """``mc_samples`` target draws from the model's predictive at z (the loss knows how)."""
        gen = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + b)
        return [self.problem.loss_fn.sample_targets(z, y, gen) for _ in range(self.mc_samples)]

    def _gnvp(self, x: Tensor, y: Tensor, b: int) -> Callable[[Tensor], Tensor]:
        f = lambda th: self.problem.forward(th, x)  # noqa: E731
        z, pullback = vjp(f, self._theta)
        m = self._output_curvature(z.detach(), y, b)

        def gvp(v: Tensor) -> Tensor:
            jv = jvp(f, (self._theta,), (v,))[1]
            return pullback(m(jv))[0]

        return gvp

    # -- the whole data set -----------------------------------------------------------------
    def _apply(self, V: Tensor) -> Tensor:
        out = torch.zeros_like(V)
        k = V.shape[0]
        for b, w, xb, yb in self.problem.iter_indexed():
            made: list[Callable[[Tensor], Tensor]] = []

            def rows(a: int, z: int, b: int = b, w: float = w, xb=xb, yb=yb, made=made) -> None:
                """out[a:z] += w · C_b V[a:z]: one vector by double backward (Hessian) or the
                batch's product; several through vmap of the batch's product."""
                if self.kind == "hessian" and z - a == 1:
                    out[a].add_(self._hvp_autograd(b, xb, yb, V[a]), alpha=w)
                    return
                if not made:
                    made.append(self._hvp(xb, yb) if self.kind == "hessian"
                                else self._gnvp(xb, yb, b))
                if z - a == 1:  # one vector: vmap's batching overhead buys nothing
                    out[a].add_(made[0](V[a]), alpha=w)
                else:
                    out[a:z].add_(vmap(made[0])(V[a:z]), alpha=w)

            start = self.blocks.measure(rows, k) if k > 1 and self.blocks.deciding else 0
            size = self.blocks.cap(self.chunk)
            for a in range(start, k, size):
                rows(a, min(a + size, k))
        return distributed.all_reduce(out)

    def __call__(self, V: Tensor) -> Tensor:
        """C V for a block V of shape (k, P) (or one vector of shape (P,)).

        On running out of GPU memory it first stops keeping the batches' gradient graphs, then
        retries a block in chunks of half the size (down to one vector); the smaller chunk is
        kept for later calls."""
        single = V.dim() == 1
        V = V.reshape(1, -1) if single else V
        if V.shape[1] != self.size:
            raise ValueError(f"vectors of length {V.shape[1]} for an operator of size {self.size}")
        V = V.to(device=self.device, dtype=self.dtype)
        while True:
            try:
                out = self._apply_with_fallback(V)
                break
            except torch.cuda.OutOfMemoryError:
                self._graphs.clear()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                if self.cache_graphs:  # first give up the kept gradient graphs
                    self.cache_graphs = False
                    continue
                if V.shape[0] == 1 or self.chunk == 1:
                    raise InputError(
                        f"out of {self.device} memory for one curvature-vector product of "
                        f"{self.problem.batch_size} samples: use a smaller `batch_size`"
                    ) from None
                self.chunk = max(1, min(self.chunk or V.shape[0], V.shape[0]) // 2)
        self.matvecs += V.shape[0]
        return out[0] if single else out

    def _apply_with_fallback(self, V: Tensor) -> Tensor:
        """``_apply``, switching once to reverse-over-reverse where forward mode has no rule."""
        with contextlib.ExitStack() as stack:
            if self.reverse_over_reverse:
                stack.enter_context(math_attention())
            try:
                return self._apply(V)
            except torch.cuda.OutOfMemoryError:
                raise
            except (NotImplementedError, RuntimeError) as e:
                if self.reverse_over_reverse or not _is_missing_rule(e):
                    raise
                self.reverse_over_reverse = True
                self._graphs.clear()
                if FALLBACK_NOTE not in self.problem.notes:  # said once, printed by the CLI
                    self.problem.notes.append(FALLBACK_NOTE)
                stack.enter_context(math_attention())
                return self._apply(V)


def _is_missing_rule(e: Exception) -> bool:
    """True for errors that mean an op lacks a forward-mode or double-backward rule."""
    text = str(e).lower()
    keys = (
        "forward ad", "forward-mode", "not implemented", "jvp", "derivative for", "double",
        "zerotensor",
    )
    return isinstance(e, NotImplementedError) or any(k in text for k in keys)


def make_operator(
    problem: Problem, curvature: str = "hessian", chunk: int | None = None, seed: int = 0
) -> CurvatureOperator:
    """The ``curvature`` operator of ``problem`` at its current θ."""
    return CurvatureOperator(problem, curvature, chunk=chunk, seed=seed)
