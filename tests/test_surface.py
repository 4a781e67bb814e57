"""The surface analysis against known answers: closed-form least squares, per-filter norms,
Hessian eigenvectors, the plane through three points, a trajectory's principal components."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import exact_hessian, small_problem
from torch import nn

from landscape.analyses import surface_directions as sd
from landscape.analyses.surface import empty, mismatch, parse_range, parse_steps, resume, surface
from landscape.errors import InputError
from landscape.problem import Problem
from landscape.results import read_result, update_result


def least_squares(n: int = 40, d: int = 4, k: int = 2, seed: int = 0) -> Problem:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, k, generator=g, dtype=torch.float64)
    torch.manual_seed(seed)
    return Problem(nn.Linear(d, k).double(), x, y, loss="mse", batch_size=16, dtype=torch.float64)


def closed_form(problem: Problem, theta: torch.Tensor) -> float:
    x = torch.cat([xb for _, xb, _ in problem.iter_batches()])
    y = torch.cat([yb for _, _, yb in problem.iter_batches()])
    p = problem.unflatten(theta)
    return float(((x @ p["weight"].T + p["bias"] - y) ** 2).mean())


@pytest.mark.parametrize("chunk", [1, 4])
@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_5x7_grid_equals_the_closed_form_from_the_stored_directions(chunk, ignore):
    problem = least_squares()
    dirs = sd.random(problem, 2, seed=3, ignore=ignore)
    r = empty(dirs, (5, 7), ((-1.0, 2.0), (-0.5, 0.5)), problem.is_classification, seed=3)
    surface(problem, r, chunk=chunk)
    assert r.loss.shape == (5, 7) and r.done.all() and r.accuracy is None
    d1, d2 = (torch.as_tensor(v) for v in r.directions)
    want = np.array([[closed_form(problem, problem.theta + a * d1 + b * d2) for b in r.y]
                     for a in r.x])  # fmt: skip
    err = np.abs(r.loss - want).max()
    assert err < 1e-9, err
    assert r.y[0] == -0.5 and r.y[-1] == 0.5 and len(r.x) == 5


def _filter_norms(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).norm(dim=1)


def _cnn() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(2, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Conv2d(5, 4, 3),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()  # fmt: skip


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_filter_normalised_directions_match_every_filter_norm(arch):
    if arch == "cnn":
        x, model = torch.randn(12, 2, 8, 8, dtype=torch.float64), _cnn()
    else:
        torch.manual_seed(2)
        x = torch.randn(12, 5, dtype=torch.float64)
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(),
                              nn.Linear(6, 3)).double()  # fmt: skip
    problem = Problem(model, x, torch.arange(12) % 3, dtype=torch.float64)
    for ignore in ("biasbn", "none"):
        d = sd.random(problem, 2, seed=0, norm="filter", ignore=ignore).vectors
        w = problem.unflatten(problem.theta)
        checked = 0
        for row in d:
            for name, part in problem.unflatten(row).items():
                if w[name].dim() <= 1:  # biases, BatchNorm weight and bias
                    want = 0.0 if ignore == "biasbn" else float(w[name].norm())
                    assert float(part.norm()) == pytest.approx(want, rel=1e-12, abs=1e-300)
                    continue
                per = _filter_norms(part)
                assert torch.allclose(per, _filter_norms(w[name]), rtol=1e-12, atol=0), name
                checked += len(per)
        assert checked == 2 * sum(t.shape[0] for t in w.values() if t.dim() > 1)


def test_layer_normalised_and_unnormalised_directions():
    problem = small_problem()
    w = problem.unflatten(problem.theta)
    d = sd.random(problem, 1, seed=0, norm="layer", ignore="none").vectors[0]
    for name, part in problem.unflatten(d).items():
        assert float(part.norm()) == pytest.approx(float(w[name].norm()), rel=1e-12)
    raw = sd.random(problem, 1, seed=0, norm="none", ignore="none").vectors[0]
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(raw, torch.randn(1, problem.size, generator=gen, dtype=torch.float64)[0])
    with pytest.raises(InputError):
        sd.normalise(problem, d, norm="weird")


@pytest.mark.slow
def test_hessian_axes_are_unit_eigenvectors_of_the_exact_hessian():
    problem = small_problem()
    dirs = sd.hessian(problem, 2, seed=0)
    H = exact_hessian(problem)
    lam = torch.linalg.eigvalsh(H).flip(0)[:2].numpy()
    assert np.allclose(dirs.extra["eigenvalues"], lam, rtol=1e-6)
    for v, ev in zip(dirs.vectors, lam):
        assert float(v.norm()) == pytest.approx(1.0, abs=1e-9)
        assert torch.allclose(H @ v, ev * v, atol=1e-5 * abs(ev))


def test_plane_through_three_points_hits_each_checkpoint():
    a, b, c = (small_problem(seed=s) for s in (0, 1, 2))
    dirs = sd.through(a, [b.theta, c.theta])
    r = empty(dirs, (3, 3), ((0.0, 1.0), (0.0, 1.0)), True, bn="keep")
    surface(a, r, chunk=3)
    for (i, j), other in (((0, 0), a), ((2, 0), b), ((0, 2), c)):  # a's data at each θ
        assert r.loss[i, j] == pytest.approx(a.evaluate(other.theta)["loss"], rel=1e-12)


def test_trajectory_components_span_a_planar_trajectory():
    problem = small_problem()
    g = torch.Generator().manual_seed(5)
    u, v = torch.randn(2, problem.size, generator=g, dtype=torch.float64)
    coords = [(0.0, 0.0), (1.0, 0.5), (2.0, -0.3), (2.5, 1.0), (3.0, 0.2)]
    thetas = [problem.theta + s * u + t * v for s, t in coords]
    dirs = sd.trajectory(problem, thetas)
    d = dirs.vectors
    assert torch.allclose(d @ d.T, torch.eye(2, dtype=d.dtype), atol=1e-12)
    proj = torch.as_tensor(dirs.extra["trajectory"])
    back = problem.theta + proj @ d  # the plane holds the whole trajectory
    assert torch.allclose(back, torch.stack(thetas), atol=1e-9)
    assert dirs.extra["explained"].sum() == pytest.approx(1.0)


def test_vectorised_points_equal_one_at_a_time():
    problem = small_problem()
    dirs = sd.random(problem, 2, seed=1)
    one, many = (empty(dirs, (4, 3), ((-1, 1), (-1, 1)), True) for _ in range(2))
    surface(problem, one, chunk=1)
    surface(problem, many, chunk=5)
    assert np.allclose(one.loss, many.loss, rtol=1e-12) and np.array_equal(one.accuracy,
                                                                           many.accuracy)


def test_interrupted_run_resumes_to_the_same_numbers(tmp_path):
    from landscape.results import RunInfo

    problem = small_problem()
    dirs = sd.random(problem, 2, seed=0)

    def fresh():
        return empty(dirs, (6, 5), ((-1, 1), (-2, 2)), True)

    whole = surface(problem, fresh(), chunk=4)
    path, run = str(tmp_path / "s.h5"), RunInfo("surface")
    first = fresh()
    update_result(path, first, run, [])

    def stop(done, total):
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        surface(problem, first, chunk=4, progress=stop, save_every=0.0,
                save=lambda r: update_result(path, r, run, ["surface/loss", "surface/accuracy",
                                                            "surface/done"]))  # fmt: skip
    stored = read_result(path)
    assert 0 < stored["surface"]["done"].sum() < 30
    assert np.isnan(stored["surface"]["loss"][~stored["surface"]["done"]]).all()
    assert mismatch(stored, fresh()) is None
    assert mismatch(stored, empty(sd.random(problem, 2, seed=1), (6, 5), ((-1, 1), (-2, 2)),
                                  True)) is not None  # fmt: skip
    again = surface(problem, resume(stored, fresh()), chunk=4)
    assert np.array_equal(again.loss, whole.loss) and np.array_equal(again.accuracy,
                                                                      whole.accuracy)


def test_parse_steps_and_range():
    assert parse_steps("5", 2) == (5, 5) and parse_steps("5,7", 2) == (5, 7)
    assert parse_range("2", 2) == ((-2, 2), (-2, 2))
    assert parse_range("0:1,-1:3", 2) == ((0, 1), (-1, 3))
    for bad in ("5,7,9", "x"):
        with pytest.raises(InputError):
            parse_steps(bad, 2)
    with pytest.raises(InputError):
        parse_range("0:1:2", 1)


def test_points_are_vectorised_by_default_only_without_convolutions():
    from landscape.analyses.surface_eval import AUTO_CHUNK, auto_chunk

    cnn = Problem(_cnn(), torch.randn(4, 2, 8, 8, dtype=torch.float64), torch.arange(4) % 3,
                  dtype=torch.float64)  # fmt: skip
    assert auto_chunk(cnn) == 1 and auto_chunk(small_problem()) == AUTO_CHUNK


def test_bn_reset_re_estimates_the_statistics_at_every_point():
    from landscape.analyses.interpolation import Interpolation
    from landscape.analyses.surface import resolve_bn

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 2, 8, 8, generator=g, dtype=torch.float64), torch.arange(24) % 3
    problem = Problem(_cnn(), x, y, batch_size=8, dtype=torch.float64)
    assert resolve_bn(problem, None, through=False) == "reset"
    assert resolve_bn(small_problem(), "reset", through=False) == "keep"
    dirs = sd.random(problem, 1, seed=0)
    r = empty(dirs, (3,), ((-0.5, 0.5),), True, bn="reset")
    surface(problem, r, bn_batches=2)
    ip = Interpolation(problem, None, "reset", 2, 0)
    for i, a in enumerate(r.x):
        theta = problem.theta + a * torch.as_tensor(r.directions[0])
        state = {**problem.model.state_dict(), **problem.unflatten(theta)}
        want = ip.measure(ip.reset(state))["loss"]
        assert r.loss[i] == pytest.approx(want, rel=1e-12)
    kept = surface(problem, empty(dirs, (3,), ((-0.5, 0.5),), True, bn="keep"))
    assert not np.allclose(kept.loss, r.loss)
