"""Curvature operators against exact float64 matrices."""

import pytest
import torch
from helpers import exact_hessian, small_problem

from landscape.curvature import CurvatureOperator, make_operator


def _all_data(p):
    x = torch.cat([xb for xb, _ in p.batches])
    y = torch.cat([yb for _, yb in p.batches])
    return x, y


def _jacobian_and_output_hessian(p):
    x, y = _all_data(p)
    J = torch.func.jacrev(lambda th: p.forward(th, x))(p.theta)  # (N, C, P)
    z = p.forward(p.theta, x)
    Hz = torch.func.hessian(lambda zz: p.loss_fn(zz, y))(z)  # (N, C, N, C)
    return J, z, Hz


def test_hessian_matches_exact_on_uneven_batches():
    p = small_problem(batch_size=64)
    H = exact_hessian(p)
    op = make_operator(p, "hessian")
    V = torch.randn(7, p.size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(op(V), V @ H, atol=1e-13, rtol=1e-10)
    assert op.matvecs == 7
    assert torch.allclose(op(V[0]), H @ V[0], atol=1e-13)
    assert op.matvecs == 8


def test_ggn_equals_jt_hz_j():
    p = small_problem(batch_size=64)
    J, z, Hz = _jacobian_and_output_hessian(p)
    N, C, P = J.shape
    G = J.reshape(N * C, P).T @ Hz.reshape(N * C, N * C) @ J.reshape(N * C, P)
    op = make_operator(p, "ggn")
    V = torch.randn(5, P, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(op(V), V @ G, atol=1e-13, rtol=1e-10)


def test_empirical_fisher_equals_mean_outer_product_of_sample_gradients():
    p = small_problem(batch_size=64)
    x, y = _all_data(p)

    def sample_loss(th, xi, yi):
        return p.batch_loss(th, xi[None], yi[None])

    G = torch.func.vmap(torch.func.grad(sample_loss), in_dims=(None, 0, 0))(p.theta, x, y)
    F = G.T @ G / len(x)
    op = make_operator(p, "ef")
    V = torch.randn(3, p.size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(op(V), V @ F, atol=1e-13, rtol=1e-10)


def test_monte_carlo_fisher_expectation_is_ggn():
    p = small_problem(batch_size=64)
    v = torch.randn(p.size, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    ggn = make_operator(p, "ggn")(v)
    # 40 independent draws, each the average of 25 sampled labels per input (1000 in all)
    draws = torch.stack(
        [CurvatureOperator(p, "fisher", seed=s, mc_samples=25)(v) for s in range(40)]
    )
    mean = draws.mean(0)
    stderr = draws.std(0) / draws.shape[0] ** 0.5
    z = (mean - ggn).abs() / (stderr + 1e-300)
    # a statistical bound: every coordinate within 5 standard errors of the exact GGN product
    assert z.max() < 5.0, z.max()
    # and the Fisher is not secretly the GGN (single draws do differ)
    single = make_operator(p, "fisher", seed=0)(v)
    assert (single - ggn).norm() > 1e-3 * ggn.norm()


def test_fisher_is_seeded():
    p = small_problem()
    v = torch.ones(p.size, dtype=torch.float64)
    a = make_operator(p, "fisher", seed=7)(v)
    b = make_operator(p, "fisher", seed=7)(v)
    assert torch.equal(a, b)


def test_restricted_operator_is_the_diagonal_block():
    p = small_problem()
    H = exact_hessian(p)
    blocks = p.blocks()
    b = blocks[1]
    sub = p.restrict(b.names)
    op = make_operator(sub, "hessian")
    V = torch.randn(2, b.size, dtype=torch.float64)
    assert torch.allclose(op(V), V @ H[b.start : b.stop, b.start : b.stop], atol=1e-13)


def test_mse_regression_hessian_is_two_xtx_over_n():
    """A linear model under mse has the closed-form Hessian 2 XᵀX / (N·D) for D outputs."""
    from torch import nn

    from landscape.problem import Problem

    g = torch.Generator().manual_seed(5)
    x = torch.randn(50, 4, dtype=torch.float64, generator=g)
    y = torch.randn(50, 1, dtype=torch.float64, generator=g)
    model = nn.Linear(4, 1, bias=False).double()
    p = Problem(model, x, y, loss="mse", batch_size=32, dtype=torch.float64)
    H = 2 * x.T @ x / len(x)
    V = torch.randn(3, 4, dtype=torch.float64, generator=g)
    for kind in ("hessian", "ggn"):
        assert torch.allclose(make_operator(p, kind)(V), V @ H, atol=1e-13), kind


def test_single_vector_products_with_and_without_cached_graphs():
    """Repeated one-vector products reuse each batch's gradient graph; both paths are exact."""
    p = small_problem(batch_size=64)
    H = exact_hessian(p)
    g = torch.Generator().manual_seed(6)
    for cache in (True, False):
        op = CurvatureOperator(p, "hessian", cache_graphs=cache)
        for _ in range(3):
            v = torch.randn(p.size, dtype=torch.float64, generator=g)
            assert torch.allclose(op(v), H @ v, atol=1e-13, rtol=1e-10)
        assert op.matvecs == 3
        assert len(op._graphs) == (2 if cache else 0)


def test_block_out_of_gpu_memory_is_retried_in_halving_chunks(monkeypatch):
    """A block that does not fit is split (here: more than 3 vectors at once 'runs out of
    memory') once keeping the gradient graphs has been given up; the product is still the
    exact Hessian's, and the chunk size is remembered."""
    p = small_problem(batch_size=40)
    H = exact_hessian(p)
    op = CurvatureOperator(p)
    real = op._apply
    sizes: list[int] = []

    def tight(V):
        k = V.shape[0] if op.chunk is None else min(op.chunk, V.shape[0])
        sizes.append(k)
        if k > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(V)

    monkeypatch.setattr(op, "_apply", tight)
    V = torch.randn(13, p.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op(V), V @ H, rtol=1e-10, atol=1e-12)
    assert sizes == [13, 13, 6, 3] and op.chunk == 3 and op.matvecs == 13
    assert not op.cache_graphs


def test_one_vector_out_of_gpu_memory_is_a_clear_input_error(monkeypatch):
    from landscape.errors import InputError

    op = CurvatureOperator(small_problem())

    def full(V):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(op, "_apply", full)
    with pytest.raises(InputError, match="`batch_size`"):
        op(torch.ones(op.size, dtype=torch.float64))


def test_kept_graphs_are_given_up_before_failing_one_vector(monkeypatch):
    """One product that fits only without the kept per-batch graphs still succeeds."""
    p = small_problem(batch_size=40)
    H = exact_hessian(p)
    op = CurvatureOperator(p)
    assert op.cache_graphs
    real = op._apply

    def tight(V):
        if op.cache_graphs:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(V)

    monkeypatch.setattr(op, "_apply", tight)
    v = torch.randn(p.size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(op(v), H @ v, rtol=1e-10, atol=1e-12)
    assert not op.cache_graphs and op.chunk is None and op.matvecs == 1
