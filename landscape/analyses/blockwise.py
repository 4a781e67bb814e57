"""``blocks``: the spectra of a curvature matrix's diagonal blocks, grouped by parameter kind.

Parameters are gathered into groups by regular expressions on their names (``NAME=REGEX``, the
first matching group wins; :data:`PRESETS` covers GPT-2, LLaMA and BERT-style names: embeddings,
query/key/value, attention output, MLP, norms, head). Each group g gets the spectrum of its
diagonal block C_gg (``problem.restrict``: the other parameters held fixed): the top eigenvalues
(Lanczos) and the SLQ density with its trace P_g · mean_r Σ_j w_rj θ_rj ± stderr.

Heterogeneity (Zhang et al. 2024, "Why Transformers Need Adam: A Hessian Perspective"): the
Jensen–Shannon distance between every pair of block densities, re-smoothed on one common grid
with one σ = (max node − min node) / 100 over all groups. With p, q the densities' grid masses
(each summing to 1) and m = (p + q)/2, JS(p, q) = ½ Σ p log₂(p/m) + ½ Σ q log₂(q/m) and the
distance is √JS, in [0, 1] (0: the same density, 1: disjoint supports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import InputError
from ..linalg.slq import density as smooth_density
from ..problem import Problem, ProgressFn
from ..results import Result
from .spectrum import spectrum

# GPT-2 (wte, wpe, attn.c_attn, attn.c_proj, mlp, ln_*), LLaMA (embed_tokens, q/k/v/o_proj,
# mlp gate/up/down, *norm) and BERT/DistilBERT (word/position/token_type embeddings, query/key/
# value or q/k/v_lin, attention.output.dense or out_lin, intermediate/output.dense or ffn,
# LayerNorm, pooler) names; first match wins, so attention output precedes the MLP.
TRANSFORMER = {
    "embeddings": r"(^|\.)(wte|wpe|embed_tokens|embed_positions|word_embeddings|"
                  r"position_embeddings|token_type_embeddings)\.",
    "qkv": r"(^|\.)(c_attn|q_proj|k_proj|v_proj|query|key|value|qkv_proj|q_lin|k_lin|v_lin)\.",
    "attn_out": r"(attn|attention)\.(c_proj|o_proj|out_proj|dense|out_lin|output\.dense)\.",
    "mlp": r"(^|\.)(mlp|feed_forward|ffn|intermediate\.dense|output\.dense)\.",
    "norms": r"(^|\.)((?i:ln_\w*|\w*norm\w*))\.",
    "head": r"(^|\.)(lm_head|score|classifier|pre_classifier|pooler)\.",
}
PRESETS = {"transformer": TRANSFORMER, "gpt2": TRANSFORMER, "llama": TRANSFORMER}


def parse_groups(specs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``NAME=REGEX`` items and preset names (default: ``transformer``) -> {name: regex}."""
    groups: dict[str, str] = {}
    for item in specs or ["transformer"]:
        if item in PRESETS:
            groups.update(PRESETS[item])
            continue
        name, sep, pattern = item.partition("=")
        if not sep or not name or not pattern:
            raise InputError(f"`group_by` {item!r}: use NAME=REGEX or a preset "
                             f"({', '.join(PRESETS)})")
        try:
            re.compile(pattern)
        except re.error as e:
            raise InputError(f"`group_by` {item!r}: not a regular expression ({e})") from None
        groups[name] = pattern
    return groups


def assign(names: list[str], groups: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """({group: its parameter names} for the groups that match any, the names no group took)."""
    out: dict[str, list[str]] = {g: [] for g in groups}
    left = []
    for name in names:
        group = next((g for g, pat in groups.items() if re.search(pat, name)), None)
        (out[group] if group else left).append(name)
    return {g: ns for g, ns in out.items() if ns}, left


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """√JS(p, q) in bits for two nonnegative vectors on one grid (each normalised to sum 1)."""
    p, q = p / p.sum(), q / q.sum()

    def kl_to_mean(a: np.ndarray, b: np.ndarray) -> float:  # KL(a ‖ (a+b)/2), no underflow
        keep = a > 0
        return float(np.sum(a[keep] * np.log2(2 * a[keep] / (a[keep] + b[keep]))))

    js = 0.5 * kl_to_mean(p, q) + 0.5 * kl_to_mean(q, p)
    return float(np.sqrt(min(max(js, 0.0), 1.0)))


@dataclass
class BlockwiseResult(Result):
    """Per group: parameters, top eigenvalues, SLQ trace ± stderr, density; JS distances."""

    names: list[str]
    patterns: list[str]
    n_params: np.ndarray
    eigenvalues: np.ndarray  # (G, k), descending, NaN-padded
    lambda_max: np.ndarray
    trace: np.ndarray
    trace_stderr: np.ndarray
    grid: np.ndarray
    densities: np.ndarray  # (G, X) on the common grid
    sigma: float
    js_distance: np.ndarray  # (G, G)
    curvature: str
    unassigned: list[str]
    matvecs: int = 0

    command: ClassVar[str] = "blocks"
    descriptions: ClassVar[dict[str, str]] = {
        "blockwise/n_params": "parameters per group",
        "blockwise/eigenvalues": "top eigenvalues of each group's diagonal block (G, k)",
        "blockwise/lambda_max": "largest eigenvalue of each group's diagonal block",
        "blockwise/trace": "SLQ trace of each diagonal block P_g · mean_r Σ_j w_rj θ_rj",
        "blockwise/trace_stderr": "standard error of each block trace over the SLQ runs",
        "blockwise/grid": "the common grid of the block densities",
        "blockwise/densities": "each block's SLQ density on the common grid (G, X)",
        "blockwise/js_distance": "pairwise Jensen-Shannon distance √JS (bits) of block densities",
    }

    def tree(self) -> dict[str, Any]:
        fields = ("n_params", "eigenvalues", "lambda_max", "trace", "trace_stderr", "grid",
                  "densities", "js_distance")
        out: dict[str, Any] = {k: getattr(self, k) for k in fields}
        out.update(names=list(self.names), patterns=list(self.patterns))
        out["attrs"] = {"sigma": self.sigma, "curvature": self.curvature,
                        "unassigned": ", ".join(self.unassigned)}
        return {"blockwise": out}


def blockwise(
    problem: Problem,
    group_by: list[str] | tuple[str, ...] | None = None,
    top_k: int = 1,
    tol: float = 1e-6,
    curvature: str = "hessian",
    slq_runs: int = 10,
    slq_steps: int = 50,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> BlockwiseResult:
    """Spectra of the diagonal blocks of ``curvature`` for the parameter groups ``group_by``
    (``NAME=REGEX`` items or preset names; default the ``transformer`` preset)."""
    groups = parse_groups(group_by)
    members, left = assign(problem.names, groups)
    if not members:
        raise InputError(f"no parameter matches any group ({', '.join(groups)})")
    parts, matvecs = {}, 0
    for name, names in members.items():
        r = spectrum(problem.restrict(names), top_k=top_k, tol=tol, curvature=curvature,
                     slq_runs=slq_runs, slq_steps=slq_steps, seed=seed, progress=progress)
        parts[name] = r.whole
        matvecs += r.matvecs
    nodes = np.concatenate([s.density.nodes[s.density.weights > 0] for s in parts.values()])
    span = float(nodes.max() - nodes.min())
    sigma = span / 100 if span > 0 else max(abs(float(nodes.max())), 1.0) * 1e-3
    grid = np.linspace(nodes.min() - 3 * sigma, nodes.max() + 3 * sigma, 2000)
    dens = np.stack([smooth_density(s.density.nodes, s.density.weights, sigma, grid)[1]
                     for s in parts.values()])
    G, k = len(parts), max(len(s.eigenvalues) for s in parts.values())
    eig = np.full((G, k), np.nan)
    for i, s in enumerate(parts.values()):
        eig[i, : len(s.eigenvalues)] = s.eigenvalues
    return BlockwiseResult(
        names=list(parts), patterns=[groups[g] for g in parts],
        n_params=np.array([s.n_params for s in parts.values()]), eigenvalues=eig,
        lambda_max=np.array([s.lambda_max for s in parts.values()]),
        trace=np.array([s.trace for s in parts.values()]),
        trace_stderr=np.array([s.trace_stderr for s in parts.values()]),
        grid=grid, densities=dens, sigma=sigma,
        js_distance=np.array([[js_distance(a, b) for b in dens] for a in dens]),
        curvature=curvature, unassigned=left, matvecs=matvecs,
    )
