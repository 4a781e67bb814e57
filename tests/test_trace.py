"""The trace analysis against exact float64 Hessians (torch.func.hessian) of tiny models."""

import math

import numpy as np
import pytest
import torch
from helpers import blobs, exact_hessian, small_problem, tanh_mlp
from torch import nn

from landscape.analyses.trace import trace
from landscape.errors import InputError
from landscape.problem import Problem

METHODS = ["hutchinson", "hutchpp", "xtrace"]


def _tiny(n: int = 40, hidden: int = 4) -> Problem:
    """One batch, P = 3·h + h + 2h + 2 (26 for h = 4): the cheapest real curvature operator."""
    x, y = blobs(n=n, d_in=3, classes=2)
    return Problem(tanh_mlp(3, hidden, 2), x, y, batch_size=n, dtype=torch.float64)


class TwoHeads(nn.Module):
    """Two independent tanh heads under an mse loss: the Hessian is block diagonal."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a = nn.Linear(5, 4)
        self.b = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.tanh(self.a(x)), torch.tanh(2 * self.b(x))], dim=-1)


def _squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mse by hand: F.mse_loss breaks forward-over-reverse HVPs ("ZeroTensors are immutable")."""
    return ((output - target) ** 2).mean()


def _two_heads() -> Problem:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 5, generator=g, dtype=torch.float64)
    y = torch.randn(50, 7, generator=g, dtype=torch.float64)
    return Problem(
        TwoHeads().double(), x, y, loss=_squared_error, batch_size=32, dtype=torch.float64
    )


@pytest.mark.parametrize("method", METHODS)
def test_estimate_within_its_own_four_sigma(method):
    p = small_problem()
    exact = float(torch.trace(exact_hessian(p)))
    for seed in range(3):
        r = trace(p, method=method, probes=30, seed=seed)
        w = r.whole.result
        assert w.method == method and w.stopped == "probes" and w.matvecs == 30
        assert 0 < w.stderr < math.inf
        assert abs(w.estimate - exact) <= 4 * w.stderr, (seed, w.estimate, exact, w.stderr)
        assert w.ci_low < w.estimate < w.ci_high
        assert r.matvecs == 30  # what the curvature operator really applied


@pytest.mark.parametrize(
    ("method", "probes"), [("hutchinson", 10), ("hutchpp", 15), ("xtrace", 10)]
)
def test_nominal_95_interval_covers_exact_trace_over_100_seeds(method, probes):
    p = _tiny()
    exact = float(torch.trace(exact_hessian(p)))
    covered = 0
    for seed in range(100):
        w = trace(p, method=method, probes=probes, seed=seed).whole.result
        covered += w.ci_low <= exact <= w.ci_high
    assert covered >= 90, covered


def test_small_operator_is_traced_exactly():
    p = _tiny()
    r = trace(p, method="xtrace")  # P = 26 <= 100 matvecs of one run: 26 unit vectors
    w = r.whole.result
    assert w.method == "exact" and w.stderr == 0 and r.matvecs == p.size == 26
    assert w.estimate == pytest.approx(float(torch.trace(exact_hessian(p))), rel=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_per_layer_traces_match_exact_diagonal_blocks(method):
    p = small_problem()  # blocks "0" (36 params) and "2" (21): probes 15 < both sizes
    H = exact_hessian(p)
    r = trace(p, method=method, probes=15, per_layer=True, seed=5)
    assert r.block_names == ["0", "2"] and r.block_sizes == [36, 21]
    for block, b in zip(p.blocks(), r.blocks):
        exact = float(torch.trace(H[block.start : block.stop, block.start : block.stop]))
        assert b.result.method == method
        assert abs(b.result.estimate - exact) <= 4 * b.result.stderr, (block.name, exact)
    total, se = r.block_sum
    assert total == pytest.approx(sum(b.result.estimate for b in r.blocks))
    assert abs(total - float(torch.trace(H))) <= 4 * se
    group = r.tree()["trace"]["per_layer"]
    assert abs(group["z"]) < 4
    assert r.matvecs == r.whole.result.matvecs + sum(b.result.matvecs for b in r.blocks)


def test_block_diagonal_toy_blocks_sum_to_whole_and_match_exact_blocks():
    p = _two_heads()  # blocks "a" (24 params) and "b" (18): the Hessian has no cross terms
    H = exact_hessian(p)
    (a, b) = p.blocks()
    assert torch.all(H[a.start : a.stop, b.start : b.stop] == 0)  # the toy is what it claims
    exact = [float(torch.trace(H[k.start : k.stop, k.start : k.stop])) for k in (a, b)]
    r = trace(p, method="xtrace", per_layer=True)  # each block fits one run: traced exactly
    assert [e.result.method for e in r.blocks] == ["exact", "exact"]
    assert [e.result.estimate for e in r.blocks] == pytest.approx(exact, rel=1e-12)
    assert r.block_sum[0] == pytest.approx(r.whole.result.estimate, rel=1e-12)
    assert abs(r.tree()["trace"]["per_layer"]["z"]) < 1  # exact vs exact: rounding only
    est = trace(p, method="hutchpp", probes=12, per_layer=True, seed=1)
    for e, x in zip(est.blocks, exact):
        assert abs(e.result.estimate - x) <= 4 * e.result.stderr


def test_diagonal_errors_within_stderr_bounds():
    p = small_problem()
    exact = torch.diagonal(exact_hessian(p)).numpy()
    r = trace(p, method="hutchinson", probes=48, diagonal=True, seed=2)
    d, se = r.diagonal, r.diagonal_stderr
    assert d.shape == se.shape == (p.size,)
    assert r.diagonal_matvecs == 48 and r.matvecs == 48 + 48
    z = np.abs(d - exact) / se
    assert np.all(z <= 4.5), z.max()
    assert np.mean(z <= 2) >= 0.85
    assert 0.4 < np.mean(z**2) < 2.5  # the stderr is neither too small nor far too large


def test_rtol_stops_on_tolerance_with_half_width_below_it():
    x, y = blobs(n=60)
    p = Problem(tanh_mlp(5, 20, 3), x, y, batch_size=64, dtype=torch.float64)  # P = 183
    exact = float(torch.trace(exact_hessian(p)))
    r = trace(p, method="xtrace", probes=20, rtol=0.05)
    w = r.whole.result
    assert w.stopped == "rtol" and w.method == "xtrace"
    assert w.ci_high - w.estimate <= 0.05 * abs(w.estimate)
    assert abs(w.estimate - exact) <= 4 * w.stderr
    h = r.whole.history
    assert h[-1, 0] == w.matvecs == r.matvecs and h[-1, 2] == pytest.approx(w.ci_high - w.estimate)
    assert np.all(np.diff(h[:, 0]) > 0)


def test_rtol_hutchinson_stops_on_tolerance():
    x, y = blobs(n=60)
    p = Problem(tanh_mlp(5, 20, 3), x, y, batch_size=64, dtype=torch.float64)  # P = 183
    r = trace(p, method="hutchinson", rtol=0.3, curvature="ggn")  # PSD: low variance
    w = r.whole.result
    assert w.stopped == "rtol" and w.ci_high - w.estimate <= 0.3 * abs(w.estimate)
    assert r.whole.history[-1, 0] == w.matvecs == r.matvecs


@pytest.mark.parametrize("method", METHODS)
def test_rtol_reports_budget_when_too_small(method):
    p = small_problem()
    r = trace(p, method=method, probes=10, rtol=1e-6, max_matvecs=30)
    w = r.whole.result
    assert w.stopped == "max_matvecs"
    assert w.ci_high - w.estimate > 1e-6 * abs(w.estimate)
    assert 0 < r.matvecs <= 30 and w.matvecs == r.matvecs


@pytest.mark.parametrize(
    "kw",
    [
        {"method": "power"},
        {"curvature": "hessain"},
        {"probes": 1},
        {"method": "xtrace", "probes": 4},
        {"rtol": 0.0},
        {"confidence": 1.0},
        {"confidence": 0.0},
        {"method": "hutchpp", "max_matvecs": 3},
        {"chunk": 0},
    ],
)
def test_bad_values_raise_input_error(kw):
    with pytest.raises(InputError):
        trace(_tiny(), **kw)


def test_small_operator_diagonal_is_exact():
    p = _tiny()
    r = trace(p, method="hutchinson", probes=30, diagonal=True)  # P = 26 <= 30 probes
    exact = torch.diagonal(exact_hessian(p)).numpy()
    assert np.allclose(r.diagonal, exact, rtol=1e-10, atol=1e-14)
    assert np.all(r.diagonal_stderr == 0) and r.diagonal_matvecs == 26


def test_plot_is_drawn_from_the_file(tmp_path):
    from landscape.plots import draw
    from landscape.results import RunInfo, read_result, write_result

    x, y = blobs(n=60)
    p = Problem(tanh_mlp(5, 20, 3), x, y, batch_size=64, dtype=torch.float64)
    r = trace(p, method="hutchpp", probes=30, rtol=0.05, per_layer=True)
    out, png = tmp_path / "t.h5", tmp_path / "t.png"
    write_result(str(out), r, RunInfo(command="trace", matvecs=r.matvecs))
    content = read_result(str(out))
    assert content["trace"]["history"]["matvecs"][-1] == r.whole.result.matvecs
    assert list(content["trace"]["per_layer"]["names"]) == ["0", "2"]
    draw(content, str(png))
    assert png.stat().st_size > 10_000


def test_xtrace_diagonal_is_xdiag_within_its_error_bars():
    """With the default method the diagonal comes from XDiag, recorded in the file."""
    p = small_problem()  # P = 57: 40 matvecs stay below P, so this is an estimate
    exact = torch.diagonal(exact_hessian(p)).numpy()
    r = trace(p, method="xtrace", probes=40, diagonal=True, seed=3)
    assert r.diagonal_method == "xdiag" and r.diagonal_matvecs == 40
    assert r.tree()["trace"]["attrs"]["diagonal_method"] == "xdiag"
    z = np.abs(r.diagonal - exact) / np.maximum(r.diagonal_stderr, 1e-300)
    assert np.mean(z <= 2) >= 0.8 and np.all(z <= 6), z.max()
    hutch = trace(p, method="hutchinson", probes=40, diagonal=True, seed=3)
    assert hutch.diagonal_method == "hutchinson"
