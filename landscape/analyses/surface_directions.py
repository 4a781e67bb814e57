"""Directions for ``surface``: rows (n, P) in θ's order.

- ``random``: seeded Gaussian, then normalised per filter (Li et al. 2018, "Visualizing the Loss
  Landscape of Neural Nets", §4: d_{i,j} ← d_{i,j} / ‖d_{i,j}‖ · ‖θ_{i,j}‖ for filter j of layer
  i, a filter being one output channel or neuron, i.e. one slice along dim 0), per layer
  (d_i ← d_i / ‖d_i‖ · ‖θ_i‖), or not at all; biases and norm-layer parameters are zeroed
  (``ignore='biasbn'``) or, included, scaled as one filter;
- ``hessian``: the top eigenvectors of the Hessian (Lanczos, as ``spectrum``), unit norm;
- ``through``: θ_B − θ_A (and θ_C − θ_A), so that B sits at x = 1 (and C at y = 1);
- ``trajectory``: the first principal components of the centred matrix [θ_k − θ] (unit norm),
  with each checkpoint's coordinates (θ_k − θ)·d;
- ``file``: a flat or by-name direction (.npy/.pt), or the directions of a surface result (.h5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import InputError
from ..problem import Problem
from .directions import from_file

NORMS = ("filter", "layer", "none")
IGNORES = ("biasbn", "none")


@dataclass
class Directions:
    """The rows d_k (n, P), how they were made, and what goes with them into the file."""

    vectors: Tensor
    kind: str
    norm: str = "none"
    ignore: str = "none"
    extra: dict = field(default_factory=dict)  # eigenvalues, trajectory coordinates, ...


def _norm_layer_params(model: nn.Module) -> set[str]:
    """Names of parameters owned by a normalisation layer (BatchNorm, LayerNorm, GroupNorm...)."""
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
    if hasattr(nn, "RMSNorm"):
        norms = norms + (nn.RMSNorm,)
    out = set()
    for mname, module in model.named_modules():
        if isinstance(module, norms):
            out.update(f"{mname}.{p}" if mname else p for p, _ in module.named_parameters(
                recurse=False))
    return out


def normalise(problem: Problem, d: Tensor, norm: str = "filter", ignore: str = "biasbn") -> Tensor:
    """``d`` (P,) rescaled to θ's filters (``filter``), layers (``layer``) or left (``none``);
    with ``ignore='biasbn'`` entries of 1-D parameters and norm-layer parameters are zeroed."""
    if norm not in NORMS:
        raise InputError(f"`norm` {norm!r} unknown; choose from {', '.join(NORMS)}")
    if ignore not in IGNORES:
        raise InputError(f"`ignore` {ignore!r} unknown; choose from {', '.join(IGNORES)}")
    skip = _norm_layer_params(problem.model)
    out = d.clone()
    weights, parts = problem.unflatten(problem.theta), problem.unflatten(out)
    for name in problem.names:
        w, p = weights[name], parts[name]
        flat_like = w.dim() <= 1 or name in skip
        if flat_like and ignore == "biasbn":
            p.zero_()
        elif norm == "filter":
            rows_w = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)
            rows_p = p.view(rows_w.shape)
            scale = rows_w.norm(dim=1) / rows_p.norm(dim=1).clamp_min(torch.finfo(p.dtype).tiny)
            rows_p.mul_(scale[:, None])
        elif norm == "layer":
            p.mul_(w.norm() / p.norm().clamp_min(torch.finfo(p.dtype).tiny))
    return out


def random(problem: Problem, n: int, seed: int, norm: str = "filter",
           ignore: str = "biasbn") -> Directions:  # fmt: skip
    """n seeded Gaussian directions (float64 CPU generator, then θ's dtype), normalised."""
    gen = torch.Generator().manual_seed(int(seed))
    raw = torch.randn(n, problem.size, generator=gen, dtype=torch.float64).to(problem.theta)
    rows = torch.stack([normalise(problem, r, norm, ignore) for r in raw])
    if not bool((rows.norm(dim=1) > 0).all()):
        raise InputError("a direction is zero: every parameter was ignored (try `ignore` none)")
    return Directions(rows, "random", norm, ignore)


def hessian(problem: Problem, n: int, seed: int, tol: float = 1e-6) -> Directions:
    """The top-n Hessian eigenvectors (largest algebraic eigenvalues), unit norm."""
    from .spectrum import spectrum

    s = spectrum(problem, top_k=n, tol=tol, density=False, save_eigenvectors=True, seed=seed)
    vectors = torch.as_tensor(s.whole.eigenvectors).to(problem.theta)
    extra = {"eigenvalues": s.whole.eigenvalues, "matvecs": s.matvecs}
    return Directions(vectors, "hessian", "none", "none", extra)


def through(problem: Problem, others: list[Tensor]) -> Directions:
    """θ_B − θ_A (and θ_C − θ_A) for the flat parameter vectors ``others`` of B (and C)."""
    rows = torch.stack([o.to(problem.theta) - problem.theta for o in others])
    if not bool((rows.norm(dim=1) > 0).all()):
        raise InputError("a `through` checkpoint equals the centre: the direction is zero")
    return Directions(rows, "through")


def trajectory(problem: Problem, thetas: list[Tensor], n: int = 2) -> Directions:
    """The first n principal components of [θ_k − θ] (centred over k), and the checkpoints'
    coordinates (θ_k − θ)·d_i on them; ``extra['explained']`` is each one's variance ratio."""
    if len(thetas) < n:
        raise InputError(f"`trajectory` needs at least {n} checkpoints for {n} directions")
    diffs = torch.stack([t.to(problem.theta) for t in thetas]).double() - problem.theta.double()
    centred = diffs - diffs.mean(dim=0)
    _, sv, vh = torch.linalg.svd(centred, full_matrices=False)
    if len(sv) < n or float(sv[n - 1]) <= 1e-12 * max(float(sv[0]), 1e-300):
        raise InputError("the trajectory spans fewer dimensions than directions asked for")
    pcs = vh[:n]
    pcs = pcs * torch.sign(pcs[torch.arange(n), pcs.abs().argmax(dim=1)])[:, None]
    explained = (sv[:n] ** 2 / (sv**2).sum()).cpu().numpy()
    coords = (diffs @ pcs.T).cpu().numpy()
    return Directions(pcs.to(problem.theta), "trajectory", "none", "none",
                      {"explained": explained, "trajectory": coords})  # fmt: skip


def from_files(problem: Problem, paths: list[str]) -> Directions:
    """Directions read from files: each .npy/.pt gives one; a surface .h5 gives its rows."""
    rows: list[Tensor] = []
    for path in paths:
        if path.endswith((".h5", ".hdf5")):
            from ..results import read_result

            stored = read_result(path).get("surface", {}).get("directions")
            if stored is None:
                raise InputError(f"{path}: holds no /surface/directions")
            stored = np.atleast_2d(np.asarray(stored))
            if stored.shape[1] != problem.size:
                raise InputError(f"{path}: directions have {stored.shape[1]} entries, θ has "
                                 f"{problem.size}")  # fmt: skip
            rows.extend(torch.as_tensor(r).to(problem.theta) for r in stored)
        else:
            rows.append(from_file(problem, path))
    return Directions(torch.stack(rows), "file")


_through, _trajectory = through, trajectory  # choose's arguments take these names


def choose(
    problem: Problem,
    n: int | None = None,
    through: list[str] | None = None,
    trajectory: list[str] | None = None,
    dir_files: list[str] | None = None,
    axes: str = "random",
    seed: int = 0,
    norm: str = "filter",
    ignore: str = "biasbn",
) -> tuple[Directions, list[dict[str, Tensor]], list[str]]:
    """(Directions, the other checkpoints' whole states, their paths) for the one source given:
    ``through`` checkpoints, a ``trajectory``, direction files, ``axes='hessian'``, else random.
    Other checkpoints load into ``problem``'s architecture (:func:`landscape.weights_like`)."""
    from ..session import weights_like

    through, trajectory, dir_files = through or [], trajectory or [], dir_files or []
    sources = [bool(through), bool(trajectory), bool(dir_files), axes == "hessian"]
    if sum(sources) > 1:
        raise InputError("choose one of `through`, `trajectory`, `dir_file` and `axes` hessian")
    if through:
        if len(through) > 2 or (n is not None and n != len(through)):
            raise InputError("`through` takes one checkpoint (a line) or two (a plane)")
        states = [weights_like(problem, p) for p in through]
        return _through(problem, [problem.flatten(st) for st in states]), states, through
    n = n or 2
    if trajectory:
        thetas = [problem.flatten(weights_like(problem, p)) for p in trajectory]
        return _trajectory(problem, thetas, n), [], trajectory
    if dir_files:
        d = from_files(problem, dir_files)
        if len(d.vectors) != n:
            raise InputError(f"the direction files hold {len(d.vectors)} directions, not {n}")
        return d, [], []
    if axes == "hessian":
        return hessian(problem, n, seed), [], []
    return random(problem, n, seed, norm, ignore), [], []
