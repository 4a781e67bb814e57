"""Permutation alignment of two networks (weight matching, Ainsworth et al. 2023).

``align_weights(model, state_a, state_b, example)`` traces the model for its permutation groups
(``graph``), finds the permutations by weight matching (``weight_matching``) and returns B's state
dict with its hidden units relabelled to match A's (``permute``).
"""

from __future__ import annotations

from torch import Tensor, nn

from .graph import PermutationSpec, permutation_spec
from .permute import permute_state, random_permutations
from .weight_matching import Matching, weight_matching

__all__ = [
    "Matching",
    "PermutationSpec",
    "align_weights",
    "permutation_spec",
    "permute_state",
    "random_permutations",
    "weight_matching",
]


def align_weights(
    model: nn.Module,
    state_a: dict[str, Tensor],
    state_b: dict[str, Tensor],
    example: Tensor,
    seed: int = 0,
) -> tuple[dict[str, Tensor], Matching, PermutationSpec]:
    """B's state dict permuted to match A's; the objective uses the parameters only."""
    spec = permutation_spec(model, example)
    params = {n for n, _ in model.named_parameters()}
    match = weight_matching(spec, state_a, state_b, keys=params, seed=seed)
    return permute_state(spec, match.perms, state_b), match, spec
