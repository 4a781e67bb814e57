"""Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", Algorithm 1).

Find permutations π maximising Σ_keys ⟨θ_A[key], π(θ_B)[key]⟩ (equivalently minimising
‖θ_A − π(θ_B)‖²) by coordinate descent: in a seeded random order, each group's permutation is the
linear assignment maximising Σ_ij C_ij P_ij with C = Σ_(key,axis) A_(axis) B̃_(axis)ᵀ, where B̃ has
every *other* group's current permutation applied; sweeps repeat until none improves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .graph import PermutationSpec
from .permute import identity, permute_state


@dataclass
class Matching:
    """The permutations found and what they achieved."""

    perms: dict[str, Tensor]
    sweeps: int
    distance_before: float  # ‖θ_A − θ_B‖ over the matched tensors
    distance_after: float  # ‖θ_A − π(θ_B)‖


def _moved(t: Tensor, axis: int) -> Tensor:
    return t.movedim(axis, 0).reshape(t.shape[axis], -1).double()


def _distance(a: dict[str, Tensor], b: dict[str, Tensor], keys: list[str]) -> float:
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in keys) ** 0.5)


def weight_matching(
    spec: PermutationSpec,
    state_a: dict[str, Tensor],
    state_b: dict[str, Tensor],
    keys: set[str] | None = None,
    seed: int = 0,
    max_sweeps: int = 1000,
) -> Matching:
    """Permutations of B's units that bring its weights closest to A's.

    ``keys`` limits the objective to these tensors (e.g. the parameters, not BatchNorm buffers);
    every tensor in the spec is still permuted consistently by ``permute_state``.
    """
    keys = set(keys) if keys is not None else {k for ax in spec.groups.values() for k, _ in ax}
    used = sorted(k for k in keys if k in state_a)
    a = {k: state_a[k].detach().cpu() for k in used}
    b = {k: state_b[k].detach().cpu() for k in used}
    perms = identity(spec)
    rng = np.random.default_rng(seed)
    names = list(spec.groups)
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - the count is reported
        improved = False
        for g in rng.permutation(names):
            n = spec.sizes[g]
            cost = torch.zeros(n, n, dtype=torch.float64)
            for key, axis in spec.groups[g]:
                if key not in a:
                    continue
                wb = b[key]
                for other_axis, other in spec.axes_of(key):
                    if other_axis != axis:
                        wb = torch.index_select(wb, other_axis, perms[other])
                cost += _moved(a[key], axis) @ _moved(wb, axis).T
            c = cost.numpy()
            _, col = linear_sum_assignment(c, maximize=True)
            old = c[np.arange(n), perms[g].numpy()].sum()
            new = c[np.arange(n), col].sum()
            if new > old + 1e-12 * max(abs(old), 1.0):
                perms[g] = torch.as_tensor(col, dtype=torch.long)
                improved = True
        if not improved:
            break
    after = permute_state(spec, perms, b)
    return Matching(perms, sweeps, _distance(a, b, used), _distance(a, after, used))
