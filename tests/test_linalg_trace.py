"""Trace estimators against exact traces: accuracy, honest intervals, budgets, counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import dense_operator as build

from landscape.linalg.operator import DenseOperator
from landscape.linalg.trace import hutchinson, hutchinson_diagonal, hutchpp, xtrace

P = 200



@pytest.fixture(scope="module")
def flat() -> tuple[DenseOperator, float]:
    """No dominant directions: Hutchinson's home ground."""
    lam = np.random.default_rng(1).normal(1.0, 1.0, P)
    return build(lam, seed=2), float(lam.sum())


@pytest.fixture(scope="module")
def spiky() -> tuple[DenseOperator, float]:
    """A few large eigenvalues dominate the trace (as in a trained network's Hessian)."""
    rng = np.random.default_rng(3)
    lam = np.concatenate([np.linspace(100.0, 20.0, 10), rng.uniform(0.0, 0.1, P - 10)])
    return build(lam, seed=4), float(lam.sum())


METHODS = {
    "hutchinson": lambda op, seed, **kw: hutchinson(op, probes=60, seed=seed, **kw),
    "hutchpp": lambda op, seed, **kw: hutchpp(op, matvecs=60, seed=seed, **kw),
    "xtrace": lambda op, seed, **kw: xtrace(op, matvecs=60, seed=seed, **kw),
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
def test_within_four_sigma_and_counts_exact(flat, method, dist):
    op0, tr = flat
    op = DenseOperator(op0.matrix)
    r = METHODS[method](op, seed=0, dist=dist)
    assert r.method == method and r.stopped == "probes"
    assert r.matvecs == op.matvecs == 60
    assert abs(r.estimate - tr) < 4 * r.stderr
    assert r.ci_low < r.estimate < r.ci_high and r.confidence == 0.95
    if method != "xtrace":  # xtrace's stderr is the jackknife's, not the samples' spread
        assert r.samples.size and np.isclose(r.samples.mean(), r.estimate)


@pytest.mark.parametrize("method", list(METHODS))
def test_interval_coverage_over_100_seeds(flat, spiky, method):
    for op, tr in (flat, spiky):
        hits = sum(
            r.ci_low <= tr <= r.ci_high for r in (METHODS[method](op, seed=s) for s in range(100))
        )
        assert hits >= 90, f"{method}: 95% interval covered the trace {hits}/100 times"


def test_deflation_beats_hutchinson_on_dominant_spectrum(spiky):
    op, tr = spiky
    err = {m: np.mean([abs(f(op, seed=s).estimate - tr) for s in range(20)])
           for m, f in METHODS.items()}
    assert err["hutchpp"] < 0.05 * err["hutchinson"]
    assert err["xtrace"] < 0.05 * err["hutchinson"]


def test_same_seed_same_numbers(flat):
    op, _ = flat
    for f in METHODS.values():
        a, b = f(op, seed=7), f(op, seed=7)
        assert a.estimate == b.estimate and a.stderr == b.stderr


def test_hutchinson_adaptive_rtol(flat):
    op0, tr = flat
    op = DenseOperator(op0.matrix)
    r = hutchinson(op, rtol=0.05, block=16, seed=1)
    assert r.stopped == "rtol" and r.matvecs == op.matvecs and r.matvecs % 16 == 0
    half = r.ci_high - r.estimate
    assert half <= 0.05 * abs(r.estimate)
    assert abs(r.estimate - tr) < 4 * r.stderr
    assert r.samples.size == r.matvecs


def test_hutchinson_budget_stops_before_tolerance(flat):
    op0, _ = flat
    op = DenseOperator(op0.matrix)
    r = hutchinson(op, rtol=1e-4, max_matvecs=50, block=16)
    assert r.stopped == "max_matvecs" and r.matvecs == op.matvecs == 50
    assert r.ci_high - r.estimate > 1e-4 * abs(r.estimate)


@pytest.mark.parametrize("method", [hutchpp, xtrace])
def test_deflated_adaptive_rtol_and_budget(spiky, method):
    op0, tr = spiky
    op = DenseOperator(op0.matrix)
    r = method(op, matvecs=30, rtol=1e-3, seed=2)
    assert r.stopped == "rtol" and r.matvecs == op.matvecs
    assert r.ci_high - r.estimate <= 1e-3 * abs(r.estimate)
    assert abs(r.estimate - tr) < 4 * r.stderr
    op = DenseOperator(op0.matrix)
    r = method(op, matvecs=30, rtol=1e-9, max_matvecs=100, seed=2)
    assert r.stopped == "max_matvecs" and r.matvecs == op.matvecs <= 100


def test_diagonal_estimate(flat):
    op0, _ = flat
    op = DenseOperator(op0.matrix)
    est, se, n = hutchinson_diagonal(op, probes=100, seed=3)
    exact = np.diag(op.matrix.numpy())
    assert n == op.matvecs == 100 and est.shape == se.shape == (P,)
    z = np.abs(est - exact) / se
    assert np.mean(z < 1.96) > 0.9 and np.max(z) < 5
    # a diagonal matrix is recovered exactly by Rademacher probes
    D = DenseOperator(torch.diag(torch.arange(1.0, 6.0, dtype=torch.float64)))
    est, se, _ = hutchinson_diagonal(D, probes=4)
    np.testing.assert_allclose(est, np.arange(1.0, 6.0))
    np.testing.assert_allclose(se, 0.0, atol=1e-12)


@pytest.mark.parametrize("method", ["xtrace", "hutchpp"])
def test_a_budget_beyond_the_memory_bound_is_pooled_runs_that_fit(flat, spiky, method):
    """60 matvecs with at most 12 in one run (the memory plan's bound): five independent runs,
    no product block above a run's, the mean of the runs, an interval that covers the exact
    trace at about its rate, and a spread about 1/sqrt(5) of one 12-matvec run's."""
    fn = xtrace if method == "xtrace" else hutchpp
    rows: list[int] = []

    class Watched(DenseOperator):
        def __call__(self, V):
            rows.append(V.shape[0] if V.dim() > 1 else 1)
            return super().__call__(V)

    for op0, tr in (flat, spiky):
        rows.clear()
        op = Watched(op0.matrix)
        r = fn(op, matvecs=60, max_run=12, seed=0)
        assert r.matvecs == op.matvecs == 60 and r.history.shape[0] == 5
        assert max(rows) <= 12
        pooled = [fn(op0, matvecs=60, max_run=12, seed=s) for s in range(100)]
        single = [fn(op0, matvecs=12, seed=s).estimate for s in range(100)]
        hits = sum(p.ci_low <= tr <= p.ci_high for p in pooled)
        assert hits >= 88, f"{method}: pooled 95% interval covered {hits}/100"
        ratio = np.std([p.estimate for p in pooled]) / np.std(single)
        assert ratio < 0.7, ratio  # 1/sqrt(5) = 0.45 expected
