"""``inspect``: what a checkpoint holds and how its model does on the data.

Per parameter block: count, ‖θ_b‖₂ and ‖∇_b L‖₂; on the whole set: L(θ), accuracy and ‖∇L‖₂
(the exact batch-size-weighted means of ``Problem``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..problem import Problem
from ..results import Result


@dataclass
class InspectResult(Result):
    format: str
    loss: float
    accuracy: float | None
    grad_norm: float
    param_norm: float
    layers: list[str]
    counts: np.ndarray
    norms: np.ndarray
    grad_norms: np.ndarray
    optimizer: dict[str, Any] = field(default_factory=dict)
    matvecs: int = 0

    command: ClassVar[str] = "inspect"
    descriptions: ClassVar[dict[str, str]] = {
        "inspect/loss": "whole-data-set mean loss",
        "inspect/accuracy": "whole-data-set accuracy (classification only)",
        "inspect/grad_norm": "2-norm of the whole-data-set gradient",
        "inspect/param_norm": "2-norm of all the parameters θ",
        "inspect/layers/names": "parameter blocks (modules owning parameters) in θ's order",
        "inspect/layers/counts": "parameters per block",
        "inspect/layers/norms": "2-norm of each block's parameters",
        "inspect/layers/grad_norms": "2-norm of each block's gradient",
    }

    def tree(self) -> dict[str, Any]:
        return {
            "inspect": {
                "format": self.format,
                "loss": self.loss,
                "accuracy": self.accuracy,
                "grad_norm": self.grad_norm,
                "param_norm": self.param_norm,
                "optimizer": json.dumps(self.optimizer),
                "layers": {
                    "names": self.layers,
                    "counts": self.counts,
                    "norms": self.norms,
                    "grad_norms": self.grad_norms,
                },
            }
        }


def inspect(
    problem: Problem, format: str = "", optimizer: dict[str, Any] | None = None
) -> InspectResult:
    """Loss, accuracy and gradient norms of ``problem`` at its θ, per block and in total."""
    metrics = problem.evaluate()
    _, g = problem.loss_and_grad()
    blocks = problem.blocks()
    theta = problem.theta
    return InspectResult(
        format=format,
        loss=metrics["loss"],
        accuracy=metrics["accuracy"],
        grad_norm=float(g.norm()),
        param_norm=float(theta.norm()),
        layers=[b.name for b in blocks],
        counts=np.array([b.size for b in blocks]),
        norms=np.array([float(theta[b.start : b.stop].norm()) for b in blocks]),
        grad_norms=np.array([float(g[b.start : b.stop].norm()) for b in blocks]),
        optimizer=optimizer or {},
    )
