"""Problem: exact whole-data-set reductions, flat-vector mapping, restriction."""

import pytest
import torch
from helpers import blobs, small_problem, tanh_mlp
from torch import nn

from landscape.errors import InputError
from landscape.problem import Problem


def test_uneven_batches_equal_single_batch():
    one = small_problem(batch_size=100)
    split = small_problem(batch_size=64)  # 64 + 36
    assert [len(x) for x, _ in split.batches] == [64, 36]
    l1, g1 = one.loss_and_grad()
    l2, g2 = split.loss_and_grad()
    assert abs(l1 - l2) < 1e-14
    assert torch.allclose(g1, g2, atol=1e-15, rtol=1e-13)
    # and against a plain autograd computation on all the data
    x, y = blobs()
    model = tanh_mlp()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    ref = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert abs(loss.item() - l2) < 1e-14
    assert torch.allclose(ref, g2, atol=1e-15, rtol=1e-13)


def test_flatten_roundtrip_and_blocks():
    p = small_problem()
    assert torch.equal(p.flatten(p.unflatten(p.theta)), p.theta)
    blocks = p.blocks()
    assert [b.name for b in blocks] == ["0", "2"]
    assert sum(b.size for b in blocks) == p.size


def test_unused_parameter_gets_zero_gradient():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(5, 3).double()
            self.spare = nn.Linear(5, 3).double()

        def forward(self, x):
            return self.used(x)

    x, y = blobs()
    p = Problem(WithSpare(), x, y, dtype=torch.float64)
    _, g = p.loss_and_grad()
    spare = p.unflatten(g)
    assert torch.count_nonzero(spare["spare.weight"]) == 0
    assert torch.count_nonzero(spare["used.weight"]) > 0


def test_params_regex_and_restrict():
    p = small_problem(params=r"^2\.")
    assert p.names == ["2.weight", "2.bias"]
    full = small_problem()
    r = full.restrict(["2.weight", "2.bias"])
    assert torch.equal(r.theta, p.theta)
    assert abs(r.loss() - full.loss()) < 1e-15
    with pytest.raises(InputError, match="matches no"):
        small_problem(params="nothing")


def test_empty_data_and_bad_model_are_input_errors():
    with pytest.raises(InputError, match="empty"):
        Problem(tanh_mlp(), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    x, y = blobs(d_in=5)
    with pytest.raises(InputError, match="does not run"):
        Problem(tanh_mlp(d_in=7), x, y, dtype=torch.float64)


def test_accuracy_is_whole_set_fraction():
    p = small_problem(batch_size=30)
    x, y = blobs()
    with torch.no_grad():
        ref = (tanh_mlp()(x).argmax(1) == y).double().mean().item()
    assert p.evaluate()["accuracy"] == pytest.approx(ref, abs=1e-12)


def test_gradient_at_theta_is_remembered_and_follows_theta():
    p = small_problem()
    l1, g1 = p.loss_and_grad()
    g1.zero_()  # callers get a copy: the remembered gradient is untouched
    l2, g2 = p.loss_and_grad()
    assert l1 == l2 and torch.count_nonzero(g2) > 0
    p.theta.add_(0.1)  # modified in place: recomputed
    l3, g3 = p.loss_and_grad()
    assert l3 != l1
    l4, g4 = p.loss_and_grad(p.theta.clone())
    assert l4 == l3 and torch.equal(g3, g4)
    q = p.with_theta(p.theta - 0.1)
    assert q.loss_and_grad()[0] == pytest.approx(l1, abs=1e-15)
