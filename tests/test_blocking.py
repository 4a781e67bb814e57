"""The probe-block size is measured on the operator's first rows (a scripted clock here): the
choice follows the timings, is capped by memory and ``chunk``, and changes no result beyond
round-off, nor the probes or the matvec count."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import exact_hessian, small_problem

from landscape import blocking, memplan
from landscape.curvature import CurvatureOperator


@pytest.fixture(autouse=True)
def warm(monkeypatch):
    """Each test as in a process where vmap has already run (the quick-product rule aside)."""
    monkeypatch.setattr(blocking, "_warm", True)


def _scripted(monkeypatch, per_probe: dict[int, float], second_single: float | None = None
              ) -> None:
    """A clock under which candidate c takes per_probe[c] seconds a probe (the single product
    is timed twice: the second takes ``second_single`` when given)."""
    ticks = itertools.count()
    now = [0.0]
    timed = [1] + list(blocking.CANDIDATES)  # the single product twice, then the blocks
    order = iter([(i, c) for i, c in enumerate(timed) for _ in (0, 1)])

    def clock() -> float:
        n = next(ticks)
        i, c = next(order, (0, 1))
        if n % 2:  # the end of a timed segment
            took = per_probe[c] * c
            now[0] += second_single if (i == 1 and second_single is not None) else took
        return now[0]

    monkeypatch.setattr(blocking, "clock", clock)


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
@pytest.mark.parametrize("fastest", [1, 4, 16])
def test_the_fastest_measured_block_is_kept_and_results_stand(monkeypatch, kind, fastest):
    _scripted(monkeypatch, {c: (0.5 if c == fastest else 1.0) for c in blocking.CANDIDATES})
    p = small_problem(batch_size=40)  # three batches: the measurement runs on the first
    V = torch.randn(44, p.size, generator=torch.Generator().manual_seed(0), dtype=p.dtype)
    op = CurvatureOperator(p, kind)
    out = op(V)
    assert op.blocks.size == fastest and op.blocks.how.startswith(str(fastest))
    # sizes are tried up to the first one slower than the best so far
    tried = list(blocking.CANDIDATES[:blocking.CANDIDATES.index(fastest) + 2])
    assert sorted(op.blocks.seconds) == tried
    assert op.matvecs == 44
    ref = CurvatureOperator(p, kind, chunk=44)(V)  # the old path: one vmapped block
    assert torch.allclose(out, ref, rtol=1e-10, atol=1e-12)
    if kind == "hessian":
        assert torch.allclose(out, V @ exact_hessian(p), rtol=1e-8, atol=1e-10)
    again = op(V[:7])  # decided: no second measurement
    assert torch.allclose(again, out[:7], rtol=1e-10, atol=1e-12)


def test_few_rows_keep_measuring_and_chunk_fixes_the_size():
    p = small_problem()
    op = CurvatureOperator(p)
    op(torch.ones(3, p.size, dtype=p.dtype))
    assert op.blocks.deciding  # only size 1 could be timed on 3 rows
    fixed = CurvatureOperator(p, chunk=5)
    fixed(torch.ones(12, p.size, dtype=p.dtype))
    assert fixed.blocks.size == 5 and not fixed.blocks.seconds


def test_memory_caps_the_candidates(monkeypatch):
    p = small_problem()
    vec = memplan.vector_bytes(p.size, p.dtype)
    monkeypatch.setattr(memplan, "available_bytes",
                        lambda device="cpu": int(5 * memplan.PRODUCT_VECTORS * vec / 0.7))
    assert CurvatureOperator(p).blocks.candidates == [1, 4]
    monkeypatch.setattr(memplan, "available_bytes", lambda device="cpu": 1)
    op = CurvatureOperator(p)
    assert op.blocks.size == 1 and "memory" in op.blocks.how


def test_a_near_tie_keeps_the_smaller_block(monkeypatch):
    _scripted(monkeypatch, {1: 1.0, 4: 0.95, 8: 0.99, 16: 0.93})
    p = small_problem(batch_size=100)
    op = CurvatureOperator(p)
    op(torch.ones(40, p.size, dtype=p.dtype))
    assert op.blocks.size == 1


def test_quick_single_products_on_a_cpu_skip_the_block_trial(monkeypatch):
    calls = []
    ticks = itertools.count()
    monkeypatch.setattr(blocking, "clock", lambda: 0.002 * next(ticks))  # 2 ms a product
    monkeypatch.setattr(blocking, "_warm", False)
    chooser = blocking.BlockChooser(1000, torch.float32, torch.device("cpu"))
    done = chooser.measure(lambda a, z: calls.append((a, z)), 40)
    assert (chooser.size, done, calls) == (1, 2, [(0, 1), (1, 2)])  # no vmapped rows at all
    assert "repay vmap's first call" in chooser.how and not blocking._warm
    monkeypatch.setattr(blocking, "_warm", True)  # once vmap has run, blocks are measured
    chooser = blocking.BlockChooser(1000, torch.float32, torch.device("cpu"))
    calls.clear()
    chooser.measure(lambda a, z: calls.append((a, z)), 40)
    assert (5, 9) in calls and chooser.how.startswith(f"{chooser.size} (measured")
    monkeypatch.setattr(blocking, "_warm", False)  # slow products are measured cold too
    monkeypatch.setattr(blocking, "clock", lambda: 0.05 * next(ticks))
    chooser = blocking.BlockChooser(1000, torch.float32, torch.device("cpu"))
    calls.clear()
    chooser.measure(lambda a, z: calls.append((a, z)), 40)
    assert (3, 5) in calls and blocking._warm  # two timed singles, then the untimed vmap pair


def test_larger_blocks_are_not_tried_once_one_is_slower(monkeypatch):
    """A block of 4 slower per probe than single products ends the trial: 8 and 16, however
    fast the clock would have made them, are never run as blocks."""
    _scripted(monkeypatch, {1: 1.0, 4: 1.5, 8: 0.1, 16: 0.1})
    p = small_problem(batch_size=40)
    V = torch.randn(44, p.size, generator=torch.Generator().manual_seed(0), dtype=p.dtype)
    op = CurvatureOperator(p)
    out = op(V)
    assert op.blocks.size == 1 and sorted(op.blocks.seconds) == [1, 4]
    assert torch.allclose(out, V @ exact_hessian(p), rtol=1e-8, atol=1e-10)


def test_the_single_product_is_timed_twice_and_the_quicker_counts(monkeypatch):
    """A slow first timing of the single product (a busy spell) does not hand the choice to a
    block: singles at 1.0 then 0.6 s, a block of 4 at 0.62 s a probe keeps size 1 (with one
    timing, 1.0 s, the block would have won by 38%)."""
    _scripted(monkeypatch, {1: 1.0, 4: 0.62, 8: 0.7, 16: 0.7}, second_single=0.6)
    p = small_problem(batch_size=40)
    op = CurvatureOperator(p)
    op(torch.ones(44, p.size, dtype=p.dtype))
    assert op.blocks.seconds[1] == pytest.approx(0.6)
    assert op.blocks.size == 1 and 4 in op.blocks.seconds
