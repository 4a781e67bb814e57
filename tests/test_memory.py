"""The memory estimate before the first product: a note, and a refusal naming a batch size
that fits when one product would not."""

from __future__ import annotations

import os

from cli_helpers import run_cli
from helpers import small_problem

import landscape
from landscape import memory
from landscape.errors import InputError

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo_a.pt")


def test_the_estimate_grows_with_the_batch_and_names_its_parts():
    small, large = memory.estimate(small_problem(batch_size=10)), memory.estimate(
        small_problem(batch_size=100))
    assert small.per_sample > 0 and small.per_sample == large.per_sample
    assert (small.batch_size, large.batch_size) == (10, 100) and large.peak > small.peak
    assert memory.size(512) == "512 B" and memory.size(3 * 2**30) == "3 GiB"


def test_open_refuses_a_product_that_will_not_fit(monkeypatch):
    e = memory.estimate(landscape.open(DEMO))
    activations = e.graphs * memory.GRAPH_FACTOR * e.per_sample * e.batch_size
    monkeypatch.setattr(memory, "free_bytes", lambda device: e.peak - activations / 2)
    try:
        landscape.open(DEMO)
    except InputError as err:
        text = str(err)
    assert "will not fit" in text and "use `batch_size`" in text
    fit = int(text.split("use `batch_size` ")[1].split()[0])
    assert 0 < fit < e.batch_size
    p = landscape.open(DEMO, batch_size=fit)  # the advice is right
    assert any(n.startswith("memory:") for n in p.notes)  # over a quarter of the free memory
    r = run_cli("inspect", DEMO, "--no-plot")
    assert r.code == 2 and f"use --batch-size {fit} or less" in r.stderr


def test_the_note_is_said_once_when_it_matters(monkeypatch):
    assert not any(n.startswith("memory:") for n in landscape.open(DEMO).notes)  # tiny: quiet
    monkeypatch.setattr(memory, "LOUD", 0.0)
    p = landscape.open(DEMO)
    assert sum(n.startswith("memory: one curvature product") for n in p.notes) == 1


def test_basis_rows_sets_one_products_peak_aside_on_the_cpu(monkeypatch):
    from landscape import memplan

    p = small_problem(batch_size=64)
    row = p.size * p.theta.element_size()
    peak = memory.estimate(p).peak
    avail = 4 * row + peak + 300 * row / memory.BASIS_SHARE + 64
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": int(avail))
    assert memory.basis_rows(p, 10**6) == 300
    assert memory.basis_rows(p, 10) is None  # 10 rows are far below a quarter: no bound


def test_graphs_are_rebuilt_when_keeping_them_would_crowd_the_memory(monkeypatch):
    """Two batches: their two kept graphs must fit in KEEP_SHARE of the free memory, else each
    product rebuilds its batch's graph (said in a note), and a product that fits with one
    graph is no longer refused. The products stay exact either way."""
    import torch
    from helpers import exact_hessian

    from landscape.curvature import CurvatureOperator

    p = small_problem(batch_size=64)
    assert p.n_batches == 2
    kept, one = memory.estimate(p, graphs=2), memory.estimate(p, graphs=1)
    assert one.peak < kept.peak
    monkeypatch.setattr(memory, "free_bytes", lambda device: kept.peak / memory.KEEP_SHARE + 1)
    assert memory.keeps_graphs(p) and CurvatureOperator(p).cache_graphs
    assert not any("rebuilds" in n for n in p.notes)
    free = kept.peak / memory.KEEP_SHARE - 1
    monkeypatch.setattr(memory, "free_bytes", lambda device: free)
    assert memory.estimate(p).graphs == 1 and not memory.keeps_graphs(p)
    op = CurvatureOperator(p)
    assert not op.cache_graphs
    assert sum("each product rebuilds them" in n for n in p.notes) == 1
    v = torch.randn(p.size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(op(v), exact_hessian(p) @ v, atol=1e-13, rtol=1e-10)
    assert not op._graphs
    # free memory between one graph's peak and two graphs': refused before, fits now
    monkeypatch.setattr(memory, "free_bytes", lambda device: (one.peak + kept.peak) / 2)
    assert memory.check(p) is not None and memory.estimate(p).graphs == 1
