"""Evaluating a block of surface points θ + Σ_k c_k·d_k: whole-set loss and accuracy.

With buffers held at θ's (``keep``) the block goes through one vectorised pass per batch
(``torch.func.vmap`` of ``functional_call`` over the stacked parameter vectors), falling back to
one point at a time where the model does not vectorise. With ``interpolate`` the floating buffers
move like the parameters (A + Σ_k c_k·(S_k − A) over the --through states S_k); with ``reset``
BatchNorm statistics are re-estimated at every point as in ``lmc`` (``Interpolation.reset``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, vmap

from ..errors import NumericalError
from ..problem import Problem
from .interpolation import Interpolation

AUTO_CHUNK = 32  # points per vmap pass for models without convolutions (benchmarks/surface_speed)


def auto_chunk(problem: Problem) -> int:
    """Points per pass when not chosen: vectorised for models without convolutions (2-4x on a
    CPU for the demo MLP), one at a time for convolutions (vmap makes them grouped, slower)."""
    convs = any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in problem.model.modules())
    return 1 if convs else AUTO_CHUNK


class PointEvaluator:
    """Loss and accuracy at θ + c·D for coordinate rows c, over the whole data set."""

    def __init__(self, problem: Problem, directions: Tensor, bn: str, states: list[dict],
                 bn_batches: int, seed: int) -> None:  # fmt: skip
        self.problem, self.D, self.bn = problem, directions, bn
        self.centre = {k: v.detach() for k, v in problem.model.state_dict().items()}
        self.buffer_steps: dict[str, list[Tensor]] = {}
        if bn == "interpolate":
            params = {n for n, _ in problem.model.named_parameters()}
            for k, v in self.centre.items():
                if k not in params and v.is_floating_point():
                    self.buffer_steps[k] = [s[k].to(v) - v for s in states]
        self.ip = Interpolation(problem, None, "reset", bn_batches, seed) if bn == "reset" else None
        self.vectorise = bn == "keep" and not problem.train_mode

    def theta(self, c: np.ndarray) -> Tensor:
        """θ + Σ_k c_k·d_k, in θ's dtype."""
        out = self.problem.theta.clone()
        for ck, d in zip(c, self.D):
            out = out + float(ck) * d
        return out

    def evaluate(self, coords: np.ndarray) -> list[dict[str, float | None]]:
        """{"loss", "accuracy"} per row of ``coords`` (a non-finite loss is stored as inf)."""
        if self.vectorise and len(coords) > 1:
            try:
                return self._vectorised(coords)
            except Exception:  # noqa: BLE001 - the single path raises any genuine error again
                self.vectorise = False  # an op without a batching rule: one point at a time
        return [self._one(c) for c in coords]

    def _one(self, c: np.ndarray) -> dict[str, float | None]:
        theta = self.theta(c)
        p = self.problem
        if self.bn == "keep":
            q = p
        else:
            state = dict(self.centre)
            state.update(p.unflatten(theta))
            for k, steps in self.buffer_steps.items():
                state[k] = self.centre[k] + sum(float(ck) * s for ck, s in zip(c, steps))
            if self.ip is not None:
                state = self.ip.reset(state)
            q = p.with_theta(theta)
            q.fixed = {k: state[k] for k in p.fixed}
        try:
            return q.evaluate(theta)
        except NumericalError:
            return {"loss": float("inf"), "accuracy": None}

    def _vectorised(self, coords: np.ndarray) -> list[dict[str, float | None]]:
        """The same sums as ``Problem.evaluate``, for several θ at once."""
        p = self.problem
        thetas = torch.stack([self.theta(c) for c in coords])
        fixed = p.fixed

        def forward(theta: Tensor, xb: Tensor) -> Tensor:
            return functional_call(p.model, {**fixed, **p.unflatten(theta)}, (xb,))

        k = len(coords)
        total = torch.zeros(k, dtype=torch.float64, device=p.device)
        correct = torch.zeros(k, dtype=torch.int64, device=p.device)
        n_targets = 0
        with torch.no_grad():
            for w, xb, yb in p.iter_batches():
                out = vmap(forward, in_dims=(0, None))(thetas, xb)
                losses = vmap(p.loss_fn, in_dims=(0, None))(out, yb)
                total += w * losses.double()
                if p.is_classification:
                    correct += (out.argmax(-1) == yb).reshape(k, -1).sum(dim=1)
                    n_targets += yb.numel()
        rows = []
        for i in range(k):
            loss = float(total[i])
            acc = int(correct[i]) / n_targets if p.is_classification else None
            rows.append({"loss": loss if np.isfinite(loss) else float("inf"), "accuracy": acc})
        return rows
