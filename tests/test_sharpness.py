"""sharpness and directions against exact float64 Hessians and torch.optim.Adam's own steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import adam_diagonal, blobs, exact_hessian, small_problem, tanh_mlp

from landscape.analyses import directions as dirs
from landscape.analyses.sharpness import sharpness
from landscape.errors import InputError
from landscape.loading.optimizer import read_optimizer
from landscape.problem import Problem


def _rq(H: torch.Tensor, u: torch.Tensor) -> float:
    return float(u @ H @ u / (u @ u))


def test_directional_sharpness_matches_exact_hessian(tmp_path):
    p = small_problem(batch_size=50)
    H = exact_hessian(p)
    evals, evecs = torch.linalg.eigh(H)
    gen = torch.Generator().manual_seed(3)
    delta = torch.randn(p.size, generator=gen, dtype=torch.float64) * 1e-2
    fvec = torch.randn(p.size, generator=gen, dtype=torch.float64)
    np.save(tmp_path / "d.npy", fvec.numpy())
    file_dir = dirs.from_file(p, str(tmp_path / "d.npy"))
    update = dirs.Update(delta, "next")
    r = sharpness(
        p,
        top_k=2,
        n_random=4,
        seed=7,
        lr=0.1,
        momentum=0.5,
        update=update,
        file_direction=file_dir,
        tol=1e-10,
    )
    _, g = p.loss_and_grad()
    assert r.lambda_max == pytest.approx(float(evals[-1]), rel=1e-8)
    np.testing.assert_allclose(r.eigenvalues, evals.flip(0)[:2].numpy(), rtol=1e-8)
    assert r.directional["gradient"] == pytest.approx(_rq(H, g), rel=1e-9)
    assert r.directional["update"] == pytest.approx(_rq(H, delta), rel=1e-9)
    assert r.directional["file"] == pytest.approx(_rq(H, fvec), rel=1e-9)
    assert r.directional["top_eigenvector"] == pytest.approx(float(evals[-1]), rel=1e-8)
    rand = dirs.random_directions(p, 4, 7)
    np.testing.assert_allclose(r.random, [_rq(H, u) for u in rand], rtol=1e-9)
    top = evecs[:, -2:]
    cos = float((top.T @ g).norm() / g.norm())
    assert r.tree()["sharpness"]["grad_cosine_topk"] == pytest.approx(cos, rel=1e-6)
    tree = r.tree()["sharpness"]
    assert tree["eos_ratio"] == pytest.approx(0.1 * float(evals[-1]) / 3.0, rel=1e-8)
    # the quadratic model: f + t g.u + t^2/2 u^T H u, and the true loss along the same u
    f0 = p.loss()
    quad = f0 + r.steps * float(g @ delta) + 0.5 * r.steps**2 * float(delta @ H @ delta)
    np.testing.assert_allclose(r.model_loss, quad, rtol=1e-10)
    assert r.true_loss[-1] == pytest.approx(p.loss(p.theta + 2.0 * delta), rel=1e-12)
    assert abs(r.true_loss[1] - r.model_loss[1]) < 1e-3 * abs(r.true_loss[1] - f0) + 1e-12
    assert r.matvecs > 0


def test_quadratic_model_without_update_uses_its_own_minimiser():
    p = small_problem(batch_size=100)
    H = exact_hessian(p)
    r = sharpness(p, top_k=1, n_random=0, max_steps=2)
    _, g = p.loss_and_grad()
    t_star = float(g @ g / (g @ H @ g))
    i = int(np.argmin(np.abs(r.steps - 1.0)))
    # at t = 1 the model sits at its minimum f - (g.g)^2 / (2 g^T H g)
    assert r.model_loss[i] == pytest.approx(p.loss() - 0.5 * t_star * float(g @ g), rel=1e-9)
    assert r.update_source == "gradient line search"


def _train_adam(opt_cls, steps: int = 4, **kw):
    x, y = blobs(n=40)
    model = tanh_mlp(hidden=4)
    opt = opt_cls(model.parameters(), lr=0.05, **kw)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    p = Problem(model, x, y, batch_size=40, dtype=torch.float64)
    shapes = {n: tuple(q.shape) for n, q in model.named_parameters()}
    return model, opt, p, read_optimizer(opt.state_dict(), shapes)


@pytest.mark.parametrize(
    "opt_cls, kw",
    [
        (torch.optim.Adam, {}),
        (torch.optim.Adam, {"weight_decay": 0.1}),
        (torch.optim.AdamW, {"weight_decay": 0.1}),
    ],
)
def test_rebuilt_adam_update_equals_torch_step(opt_cls, kw):
    model, opt, p, state = _train_adam(opt_cls, **kw)
    _, g = p.loss_and_grad()
    rebuilt = dirs.adam_update(p, state, g)
    before = p.theta.clone()
    x = torch.cat([xb for xb, _ in p.batches])
    y = torch.cat([yb for _, yb in p.batches])
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    after = torch.cat([q.detach().reshape(-1) for q in model.parameters()])
    torch.testing.assert_close(rebuilt, after - before, rtol=1e-10, atol=1e-14)
    assert float(rebuilt.norm()) > 0


def test_preconditioned_sharpness_equals_exact_eigenvalue():
    wd = 0.05
    model, opt, p, state = _train_adam(torch.optim.Adam, steps=5, weight_decay=wd)
    H = exact_hessian(p)
    d = adam_diagonal(model, opt)
    M = (H + wd * torch.eye(p.size, dtype=H.dtype)) / torch.outer(d.sqrt(), d.sqrt())
    exact = float(torch.linalg.eigvalsh(M)[-1])
    r = sharpness(p, top_k=1, n_random=0, adam=state, tol=1e-10)
    pc = r.preconditioned
    assert pc["lambda_max"] == pytest.approx(exact, rel=1e-7)
    assert pc["threshold"] == pytest.approx(38 / 0.05, rel=1e-12)
    assert pc["ratio"] == pytest.approx(exact * 0.05 / 38, rel=1e-7)


def test_direction_files_and_errors(tmp_path):
    p = small_problem()
    vec = torch.arange(p.size, dtype=torch.float64)
    torch.save(p.unflatten(vec.clone()), tmp_path / "d.pt")
    torch.testing.assert_close(dirs.from_file(p, str(tmp_path / "d.pt")), vec)
    torch.save(vec[:-1], tmp_path / "short.pt")
    with pytest.raises(InputError, match="needs"):
        dirs.from_file(p, str(tmp_path / "short.pt"))
    with pytest.raises(InputError, match="no such"):
        dirs.from_file(p, str(tmp_path / "missing.npy"))
    with pytest.raises(InputError, match="zero"):
        dirs.unit(torch.zeros(3), "file")
    a, b = dirs.random_directions(p, 2, 5), dirs.random_directions(p, 2, 5)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, dirs.random_directions(p, 2, 6))
