"""Whole model states between two endpoints and their evaluation, for ``lmc``.

θ(α) = (1−α)θ_A + αθ_B for the chosen tensors; buffers are interpolated, kept from A, or (BatchNorm,
``reset``) re-estimated at every α as a cumulative average (momentum=None) of per-batch statistics
over fresh batches, the norm layers in train mode and everything else in eval mode.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..batches import Inputs, call_args, concat, map_inputs, tensors, to_device
from ..errors import InputError
from ..problem import Problem

BN_MODES = ("interpolate", "reset", "keep-a")


def _bn_modules(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    }


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` holds BatchNorm layers with running statistics."""
    return bool(_bn_modules(model))


class Interpolation:
    """Whole states (parameters and buffers) between two endpoints, evaluated on the data."""

    def __init__(
        self, problem: Problem, eval_problem: Problem | None, bn: str, bn_batches: int, seed: int
    ) -> None:
        if bn not in BN_MODES:
            raise InputError(f"`bn` {bn!r} unknown; choose from {', '.join(BN_MODES)}")
        self.problem, self.eval_problem = problem, eval_problem
        self.params = {n for n, _ in problem.model.named_parameters()}
        self.every = set(problem.names)  # interpolated in a whole-model scan
        self.bn = bn if has_batchnorm(problem.model) or bn != "reset" else "interpolate"
        self.bn_model = copy.deepcopy(problem.model) if self.bn == "reset" else None
        self.bn_batches = self._fresh_batches(bn_batches, seed) if self.bn_model else []

    def _fresh_batches(self, count: int, seed: int) -> list[Inputs]:
        """``count`` batches of distinct samples in a seeded random order; a trailing partial
        batch is dropped unless it is the only one (each batch counts equally in the average).
        A streamed data set (not held in memory) gives its first ``count`` batches instead."""
        p = self.problem
        if not p.cached:  # every rank takes the same batches: the stream's first ones
            return [to_device(b, p.device, p.dtype)[0] for _, b in zip(range(count), p.stream)]
        x = concat([xb for xb, _ in p.batches])
        n = len(tensors(x)[0])
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        bs = p.batch_size
        chunks = [map_inputs(x, lambda t, i=i: t[order[i : i + bs].to(t.device)])
                  for i in range(0, n, bs)][:count]
        if len(chunks) > 1 and len(tensors(chunks[-1])[0]) < bs:
            return chunks[:-1]
        return chunks

    def state(
        self, a: dict[str, Tensor], b: dict[str, Tensor], alpha: float, names: set[str], base: str
    ) -> dict[str, Tensor]:
        """``base`` ('a' or 'b') with the tensors ``names`` at (1−α)A + αB; buffers by ``bn``."""
        held = a if base == "a" else b
        owners = {n.rsplit(".", 1)[0] for n in names}
        out = {}
        for k, va in a.items():
            buffer_moves = names == self.every or k.rsplit(".", 1)[0] in owners
            moving = k in names or (k not in self.params and self.bn != "keep-a" and buffer_moves)
            if moving and va.is_floating_point():
                out[k] = torch.lerp(va, b[k], alpha)
            elif k not in self.params and self.bn == "keep-a":
                out[k] = va
            else:
                out[k] = held[k]
        return self.reset(out) if self.bn_model is not None else out

    def reset(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Re-estimate every BatchNorm's running mean/var at ``state``: momentum=None (cumulative
        average of per-batch statistics) over the fresh batches, norm layers in train mode."""
        model = self.bn_model
        model.load_state_dict(state)
        bns = _bn_modules(model)
        for m in bns.values():
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for xb in self.bn_batches:
                args, kwargs = call_args(xb)
                model(*args, **kwargs)
        model.eval()
        out = dict(state)
        for name, m in bns.items():
            for attr in ("running_mean", "running_var", "num_batches_tracked"):
                out[f"{name}.{attr}" if name else attr] = getattr(m, attr).detach().clone()
        return out

    def measure(self, state: dict[str, Tensor]) -> dict[str, float]:
        """Loss and accuracy at ``state`` on the data (and ``eval_*`` on the second set)."""
        out: dict[str, float] = {}
        for prefix, p in (("", self.problem), ("eval_", self.eval_problem)):
            if p is None:
                continue
            q = p.with_theta(p.flatten(state))
            q.fixed = {k: state[k] for k in p.fixed}
            for k, v in q.evaluate().items():
                if v is not None:
                    out[prefix + k] = v
        return out
