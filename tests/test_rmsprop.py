"""RMSprop's state, read and rebuilt. The known answers: torch.optim.RMSprop's own next step on
the whole-set gradient, and the exact float64 λ_max(P^-1/2 (H + wd) P^-1/2) with P written out
from torch's own square_avg (and grad_avg), against (2 + 2μ)/lr (Cohen et al. 2022's RMSProp,
with heavy-ball momentum). Before, RMSprop with momentum was read as SGD (its momentum_buffer
taken for a heavy-ball buffer), and without it not read at all."""

from __future__ import annotations

import pytest
import torch
from helpers import exact_hessian
from test_optimizer_groups import mlp, shapes, train, two_groups

from landscape.analyses import directions as dirs
from landscape.analyses.sharpness import sharpness
from landscape.loading.optimizer import read_optimizer

VARIANTS = [
    {},
    {"momentum": 0.9},
    {"centered": True},
    {"centered": True, "momentum": 0.5, "weight_decay": 1e-2},
    {"alpha": 0.9, "eps": 1e-4, "maximize": True},
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: ",".join(kw) or "plain")
def test_the_rebuilt_step_is_torchs(kw):
    p, sd, real, _ = train(mlp(), two_groups(torch.optim.RMSprop, (0.01, 0.003), **kw))
    state = read_optimizer(sd, shapes(p.model))
    assert state.kind == "rmsprop" and len(state.covered) == 4
    _, g = p.loss_and_grad()
    update = dirs.resolve_update(p, g, None, state, None)
    assert update.source == "rmsprop"
    err = float((update.vector - real).abs().max() / real.abs().max())
    assert err < 1e-10, err


@pytest.mark.parametrize("kw", [{"momentum": 0.9}, {"centered": True, "weight_decay": 1e-2}])
def test_preconditioned_sharpness_is_the_exact_one(kw):
    p, sd, _, by_name = train(mlp(), lambda m: torch.optim.RMSprop(m.parameters(), lr=0.01, **kw))
    state = read_optimizer(sd, shapes(p.model))
    parts = []
    for name in p.names:  # P = sqrt(v - ḡ²) + ε from torch's own state
        entry, group = by_name[name]
        v = entry["square_avg"] - (entry["grad_avg"] ** 2 if group["centered"] else 0)
        parts.append((v.sqrt() + group["eps"]).reshape(-1))
    d = torch.cat(parts).double()
    wd = kw.get("weight_decay", 0.0)
    H = exact_hessian(p) + wd * torch.eye(p.size, dtype=torch.float64)
    exact = float(torch.linalg.eigvalsh(H / torch.outer(d.sqrt(), d.sqrt()))[-1])
    r = sharpness(p, top_k=1, n_random=0, adam=state, max_steps=60, tol=1e-10)
    pc = r.preconditioned
    mu = kw.get("momentum", 0.0)
    assert pc["lambda_max"] == pytest.approx(exact, rel=1e-6)
    assert pc["threshold"] == pytest.approx((2 + 2 * mu) / 0.01, rel=1e-12)
    assert pc["ratio"] == pytest.approx(exact * 0.01 / (2 + 2 * mu), rel=1e-6)
    assert pc["momentum"] == mu
