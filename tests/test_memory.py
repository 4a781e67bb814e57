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
