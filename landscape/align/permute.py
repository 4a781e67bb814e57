"""Apply hidden-unit permutations to a state dict.

For every group g with permutation π_g and every tensor axis (key, axis) in g, the aligned tensor
is ``T.index_select(axis, π_g)``: unit i of the result is unit π_g[i] of the input. The network
function is unchanged (Ainsworth et al. 2023, "Git Re-Basin", §2).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import PermutationSpec


def permute_state(
    spec: PermutationSpec, perms: dict[str, Tensor], state: dict[str, Tensor]
) -> dict[str, Tensor]:
    """A copy of ``state`` with every axis of every group permuted by ``perms[group]``."""
    out = dict(state)
    for group, axes in spec.groups.items():
        for key, axis in axes:
            if key not in out:
                continue
            index = perms[group].to(out[key].device)
            out[key] = torch.index_select(out[key], axis, index)
    return out


def identity(spec: PermutationSpec) -> dict[str, Tensor]:
    """The identity permutation of every group."""
    return {g: torch.arange(n) for g, n in spec.sizes.items()}


def random_permutations(spec: PermutationSpec, seed: int = 0) -> dict[str, Tensor]:
    """A uniformly random permutation of every group (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    return {g: torch.randperm(n, generator=gen) for g, n in spec.sizes.items()}
