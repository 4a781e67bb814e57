"""The spectrum analysis against known answers: exact float64 Hessians, closed forms, W1 bounds."""

import numpy as np
import pytest
import torch
from helpers import blobs, exact_hessian, small_problem, tanh_mlp
from torch import nn

from landscape.analyses.spectrum import spectrum
from landscape.errors import InputError
from landscape.linalg.slq import density as smooth_density
from landscape.linalg.spectral_stats import bulk_edge, mass_below
from landscape.loading.data import load_data
from landscape.problem import Problem


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b)))


@pytest.fixture(scope="module")
def mlp():
    p = small_problem(batch_size=64)  # 57 parameters, batches of 64 + 36
    eig = np.linalg.eigvalsh(exact_hessian(p).numpy())[::-1]
    return p, eig


def test_top_and_smallest_eigenvalues_match_exact_hessian(mlp):
    p, exact = mlp
    r = spectrum(p, top_k=4, which="largest", tol=1e-8, density=False)
    assert r.whole.converged and _rel(r.whole.eigenvalues, exact[:4]) < 1e-6
    assert r.whole.lambda_max == pytest.approx(exact[0], rel=1e-6)
    s = spectrum(p, top_k=3, which="smallest", tol=1e-8, density=False)
    assert _rel(s.whole.eigenvalues, exact[-3:]) < 1e-6
    assert s.whole.lambda_min == pytest.approx(exact[-1], rel=1e-6)
    b = spectrum(p, top_k=2, which="both", tol=1e-8, density=False).whole
    assert _rel(b.eigenvalues, np.r_[exact[:2], exact[-2:]]) < 1e-6
    assert b.ratio == pytest.approx(abs(exact[-1] / exact[0]), rel=1e-6)
    assert b.matvecs > 0 and np.all(b.residuals <= 1e-8)


def _quadratic(d=40, n=100, seed=0):
    """Linear model, mse loss: L = mean_i (x_i·θ - y_i)², H = 2XᵀX/N = V diag(2s²/N) Vᵀ."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.linspace(1.0, 6.0, d, dtype=torch.float64)
    x = (U * s) @ V.T
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    p = Problem(model, x, y, loss="mse", batch_size=30, dtype=torch.float64)
    return p, np.sort((2 * s**2 / n).numpy())[::-1]


def test_quadratic_model_has_closed_form_spectrum_and_p_below_steps_is_exact():
    p, exact = _quadratic()
    r = spectrum(p, top_k=p.size, tol=1e-10, slq_steps=100)  # P = 40 < 100 steps
    assert r.whole.eigenvalues.shape == (40,)
    assert _rel(r.whole.eigenvalues, exact) < 1e-8
    d = r.whole.density
    live = d.nodes[d.weights > 0]  # exhausted Krylov spaces: nodes are exact eigenvalues
    assert np.min(np.abs(live[:, None] - exact[None]), axis=1).max() < 1e-8 * exact[0]
    assert np.allclose(d.weights.sum(1), 1.0)
    assert abs(r.whole.trace - exact.sum()) < 4 * r.whole.trace_stderr
    assert r.whole.negative_mass == 0.0
    ggn = spectrum(p, top_k=3, tol=1e-10, curvature="ggn", density=False)  # linear: GGN = H
    assert _rel(ggn.whole.eigenvalues, exact[:3]) < 1e-8


def _w1(grid, values, eigenvalues):
    """1-Wasserstein distance ∫|F_density - F_exact| between the smoothed and exact laws."""
    x = np.linspace(min(grid[0], eigenvalues.min()), max(grid[-1], eigenvalues.max()), 20001)
    dens = np.interp(x, grid, values, left=0.0, right=0.0)
    F = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(x))])
    F_exact = np.searchsorted(np.sort(eigenvalues), x, side="right") / eigenvalues.size
    return float(np.sum(np.abs(F - F_exact)[:-1] * np.diff(x)))


def test_density_integrates_to_one_and_is_w1_close_to_exact_distribution():
    data = load_data("gmm", {"n": 160}, seed=0)  # 16 features, 4 classes
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 48), nn.Tanh(), nn.Linear(48, 4))
    p = Problem(model, data.x, data.y, batch_size=160, dtype=torch.float64)
    assert 1000 <= p.size <= 2500
    exact = np.linalg.eigvalsh(exact_hessian(p).numpy())
    r = spectrum(p)  # default settings
    d = r.whole.density
    assert np.sum((d.values[1:] + d.values[:-1]) / 2 * np.diff(d.grid)) == pytest.approx(1, 1e-9)
    span = exact[-1] - exact[0]
    assert _w1(d.grid, d.values, exact) < 0.03 * span
    assert r.whole.lambda_max == pytest.approx(exact[-1], rel=1e-5)  # float64, tol 1e-6
    assert abs(r.whole.trace - exact.sum()) < 4 * r.whole.trace_stderr
    zero = np.sqrt(np.finfo(np.float64).eps) * np.abs(exact).max()
    assert abs(r.whole.negative_mass - np.mean(exact < -zero)) < 0.05
    assert np.mean(exact <= r.whole.bulk_edge) > 0.95  # the bulk holds nearly all eigenvalues


def test_bulk_edge_separates_an_isolated_outlier():
    nodes = np.array([np.r_[np.linspace(-0.1, 0.3, 20), 5.0]])
    weights = np.array([np.r_[np.full(20, 0.99 / 20), 0.01]])
    grid, values, sigma = smooth_density(nodes, weights)
    edge = bulk_edge(grid, values, n_params=100, sigma=sigma)
    assert 0.3 < edge < 5.0 - 3 * sigma


def test_solvers_agree_to_the_tolerance(mlp):
    p, exact = mlp
    solvers = ["lanczos", "scipy"]
    if torch.cuda.is_available():
        pytest.importorskip("cupy")
    tol = 1e-8
    got = {s: spectrum(p, top_k=3, tol=tol, solver=s, density=False).whole for s in solvers}
    for s in solvers:
        assert _rel(got[s].eigenvalues, exact[:3]) < 1e-6, s
    assert _rel(got["scipy"].eigenvalues, got["lanczos"].eigenvalues) < 1e-6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="cupy solver needs CUDA")
def test_cupy_solver_agrees_on_cuda():
    pytest.importorskip("cupy")
    p = small_problem(batch_size=64, device="cuda")
    exact = np.linalg.eigvalsh(exact_hessian(p).cpu().numpy())[::-1]
    for solver in ("lanczos", "cupy"):
        r = spectrum(p, top_k=3, tol=1e-8, solver=solver, density=False).whole
        assert _rel(r.eigenvalues, exact[:3]) < 1e-6, solver


def test_same_seed_gives_bit_identical_numbers_on_cpu():
    x, y = blobs()
    p = Problem(tanh_mlp().float(), x, y, batch_size=64, dtype=torch.float32)
    kw = dict(top_k=3, tol=1e-4, slq_runs=4, slq_steps=20, seed=7)
    a, b = spectrum(p, **kw).whole, spectrum(p, **kw).whole
    for name in ("eigenvalues", "residuals"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    for name in ("nodes", "weights", "values", "grid"):
        assert np.array_equal(getattr(a.density, name), getattr(b.density, name))
    assert a.trace == b.trace and a.negative_mass == b.negative_mass
    c = spectrum(p, **{**kw, "seed": 8}).whole
    assert not np.array_equal(a.density.nodes, c.density.nodes)


def test_per_layer_blocks_match_exact_diagonal_blocks(mlp):
    p, _ = mlp
    H = exact_hessian(p).numpy()
    r = spectrum(p, top_k=2, tol=1e-8, per_layer=True, slq_runs=2, slq_steps=10)
    assert list(r.blocks) == [b.name for b in p.blocks()]
    for block in p.blocks():
        sub = H[block.start : block.stop, block.start : block.stop]
        top = np.linalg.eigvalsh(sub)[::-1][:2]
        got = r.blocks[block.name]
        assert got.n_params == block.size
        assert _rel(got.eigenvalues, top) < 1e-6, block.name
    assert r.matvecs == r.whole.matvecs + sum(b.matvecs for b in r.blocks.values())
    tree = r.tree()
    assert set(tree["blocks"]["0"]) == {"spectrum", "density"}


def test_mass_below_brackets_and_ignores_null_space_nodes():
    nodes = np.array([[-2.0, -1.0, 1e-12, 3.0]])
    weights = np.array([[0.1, 0.2, 0.4, 0.3]])
    # last negative node w=0.2, next node is numerically zero: midpoint 0.3 - 0.2/2
    assert mass_below(nodes, weights, -1e-9, zero=1e-9) == pytest.approx(0.2)
    # a positive next node widens the bracket upward: 0.3 + (0.4 - 0.2)/2
    assert mass_below(nodes, weights, -1e-9, zero=1e-13) == pytest.approx(0.4)
    assert mass_below(nodes, weights, -1e-9, exact=np.array([True])) == pytest.approx(0.3)


@pytest.mark.parametrize(
    "bad",
    [
        {"which": "sideways"},
        {"top_k": 0},
        {"tol": 0.0},
        {"slq_runs": 0},
        {"sigma": -1.0},
        {"curvature": "hessain"},
        {"solver": "arnoldi"},
    ],
)
def test_bad_arguments_raise_input_error(mlp, bad):
    with pytest.raises(InputError):
        spectrum(mlp[0], **bad)


# --- issue 17: λ_min is reported only when something estimated it -----------------------------


def test_largest_without_density_reports_no_lambda_min(mlp):
    p, exact = mlp
    w = spectrum(p, top_k=4, tol=1e-8, density=False).whole
    # the smallest of the top 4 is not λ_min (exact λ_min is far below it)
    assert exact[-1] < w.eigenvalues.min() - 1e-3
    assert w.lambda_min is None and w.ratio is None and w.lambda_min_from == "none"
    spec = w.tree()["spectrum"]
    assert spec["lambda_min"] is None and spec["ratio"] is None


def test_density_gives_lambda_min_as_an_slq_upper_bound(mlp):
    p, exact = mlp
    w = spectrum(p, top_k=2, tol=1e-8, slq_runs=4, slq_steps=30).whole
    assert w.lambda_min_from == "slq (upper bound)"
    assert exact[-1] - 1e-9 <= w.lambda_min < exact[-1] + 0.05 * (exact[0] - exact[-1])
    assert w.ratio == pytest.approx(abs(w.lambda_min / exact[0]), rel=1e-6)


def test_top_k_above_p_gives_the_exact_spectrum_densely(mlp):
    p, exact = mlp  # 57 parameters
    w = spectrum(p, top_k=100, density=False).whole
    assert w.solver == "dense" and w.eigenvalues.shape == (p.size,)
    assert np.abs(w.eigenvalues - exact).max() < 1e-10 * np.abs(exact).max()
    assert w.lambda_min == pytest.approx(exact[-1], rel=1e-8)
    assert w.lambda_min_from == w.lambda_max_from == "dense eigh (exact)"
    assert "bound" not in w.lambda_min_from and w.matvecs == p.size and w.converged


def test_top_k_above_p_too_large_for_dense_is_refused():
    x = torch.randn(20, 100, dtype=torch.float64)
    y = torch.randn(20, 50, dtype=torch.float64)
    p = Problem(nn.Linear(100, 50).double(), x, y, loss="mse", dtype=torch.float64)
    assert p.size == 5050
    with pytest.raises(InputError, match="`top_k` 6000 is more than the 5050 parameters"):
        spectrum(p, top_k=6000)


def test_exhausted_slq_gives_an_exact_lambda_min():
    p, exact = _quadratic()  # P = 40 < 100 steps: every SLQ run exhausts its Krylov space
    w = spectrum(p, top_k=2, tol=1e-10, slq_runs=2).whole
    assert w.lambda_min_from == "slq (exact: Krylov space exhausted)"
    assert w.lambda_min == pytest.approx(exact[-1], rel=1e-8)


def test_trace_and_negative_mass_carry_student_t_intervals(mlp):
    p, exact = mlp
    w = spectrum(p, top_k=1, tol=1e-8, slq_runs=10, slq_steps=30).whole
    # 10 runs: the 95% half-width is t_{0.975, 9} = 2.2622 standard errors, not 1 or 1.96
    lo, hi = w.trace_ci
    assert (hi - w.trace) / w.trace_stderr == pytest.approx(2.2622, abs=1e-4)
    assert (w.trace - lo) == pytest.approx(hi - w.trace)
    assert w.negative_mass_stderr > 0
    nlo, nhi = w.negative_mass_ci
    assert 0 <= nlo <= w.negative_mass <= nhi <= 1
    spec = w.tree()["spectrum"]
    assert spec["trace_ci_high"] == hi and spec["negative_mass_ci_low"] == nlo
    assert spec["attrs"]["confidence"] == 0.95


def test_a_basis_held_by_free_memory_restarts_and_says_so(mlp, monkeypatch):
    from landscape import memory

    p, exact = mlp
    monkeypatch.setattr(memory, "basis_rows", lambda problem, steps: 12)
    r = spectrum(p, top_k=4, tol=1e-8, slq_runs=4).whole
    assert r.converged and _rel(r.eigenvalues, exact[:4]) < 1e-6
    assert "held to 12 vectors" in r.memory_note and "thick restarts" in r.memory_note
    assert "SLQ runs held to 12 steps (not 100)" in r.memory_note
    assert r.density.nodes.shape[1] == 12 and r.trace_ci[0] <= exact.sum() <= r.trace_ci[1]
    monkeypatch.setattr(memory, "basis_rows", lambda problem, steps: 5)
    with pytest.raises(InputError, match="density=False"):
        spectrum(p, top_k=1, tol=1e-6)
