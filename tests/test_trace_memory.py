"""Trace's memory plan: runs shrink to what the free memory holds, or are refused (exit 2) with
the figures, before any block is allocated. The free memory is monkeypatched."""

from __future__ import annotations

import pytest
import torch
from helpers import blobs, exact_hessian, tanh_mlp

from landscape import memplan
from landscape.analyses.trace import trace
from landscape.errors import InputError
from landscape.problem import Problem


def _problem() -> Problem:
    """P = 5·40 + 40 + 40·3 + 3 = 363 > one XTrace run of 100 matvecs."""
    x, y = blobs(n=60)
    return Problem(tanh_mlp(5, 40, 3), x, y, batch_size=60, dtype=torch.float64)


def test_available_bytes_reads_the_host():
    assert memplan.available_bytes("cpu") > 1 << 20


@pytest.mark.parametrize("method", ["xtrace", "hutchpp"])
def test_runs_shrink_to_the_free_memory(monkeypatch, method):
    p = _problem()
    full = trace(p, method=method, seed=1)
    assert full.whole.result.matvecs == 99 if method == "hutchpp" else 100
    assert full.memory_note == ""
    vec = memplan.vector_bytes(p.size, p.dtype)
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": int(120 * vec / 0.7))
    small = trace(p, method=method, seed=1)
    fit, budget = small.max_run_matvecs, 99 if method == "hutchpp" else 100
    assert 6 <= fit < 60, fit
    # the budget is still spent, in runs that fit, averaged
    assert small.whole.result.matvecs == (budget // fit) * fit > 60
    assert small.whole.result.history.shape[0] == budget // fit
    assert f"not {budget}" in small.memory_note
    assert f"ran as {budget // fit} independent runs of {fit}, averaged" in small.memory_note
    assert small.memory_note in p.notes
    assert small.tree()["trace"]["attrs"]["memory_note"] == small.memory_note
    exact = float(torch.trace(exact_hessian(p)))
    r = small.whole.result
    assert abs(r.estimate - exact) < 6 * r.stderr + 1e-9  # still an honest (wider) estimate


def test_rtol_stops_doubling_at_the_memory_plan(monkeypatch):
    p = _problem()
    vec = memplan.vector_bytes(p.size, p.dtype)
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": int(200 * vec / 0.7))
    r = trace(p, method="xtrace", rtol=1e-9, seed=2).whole.result
    assert r.stopped == "memory"
    assert r.history[-1, 0] == r.matvecs


def test_refused_with_the_figures_when_nothing_fits(monkeypatch):
    p = _problem()
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": 50_000)
    with pytest.raises(InputError, match="not enough memory for xtrace.*available") as e:
        trace(p, method="xtrace")
    assert e.value.exit_code == 2
    assert "KiB" in str(e.value) or "MiB" in str(e.value)


def test_the_xdiag_diagonal_shrinks_to_the_free_memory(monkeypatch):
    p = _problem()
    full = trace(p, method="xtrace", probes=40, diagonal=True, seed=1)
    assert full.diagonal_matvecs == 40 and full.memory_note == ""
    vec = memplan.vector_bytes(p.size, p.dtype)
    # 80 rows: XTrace's 40-matvec run (5 x 20 + 64) fits, XDiag's (8 x 20 + 64) does not
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": int(180 * vec / 0.7))
    small = trace(p, method="xtrace", probes=40, diagonal=True, seed=1)
    assert small.whole.result.matvecs == 40
    assert small.diagonal_method == "xdiag" and small.diagonal_matvecs == 28
    assert "diagonal: xdiag runs of 28 matvecs, not 40" in small.memory_note
    exact = torch.diagonal(exact_hessian(p)).numpy()
    assert abs(small.diagonal.sum() - exact.sum()) < 5 * (small.diagonal_stderr ** 2).sum() ** 0.5
