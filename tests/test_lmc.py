"""The lmc analysis against known answers: closed-form barriers, a checkpoint against itself,
endpoints computed directly, permuted copies, BatchNorm statistics computed from the data,
a convex problem, layer-wise and pairwise scans."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_align import _train, blobs, cnn, mlp
from torch import nn

from landscape.align import permutation_spec, permute_state, random_permutations
from landscape.analyses.interpolation import Interpolation
from landscape.analyses.lmc import barriers, lmc
from landscape.problem import Problem


def _problem(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 16) -> Problem:
    return Problem(model, x, y, batch_size=bs, dtype=torch.float64)


def _permuted(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    spec = permutation_spec(model, x[:4])
    return permute_state(spec, random_permutations(spec, seed=3), model.state_dict())


@pytest.fixture(scope="module")
def trained_mlp():
    x, y = blobs(96, (6,))
    return _train(mlp(), x, y).double(), x.double(), y


def test_barrier_definitions_closed_form():
    alpha = np.array([0.0, 0.25, 1.0])
    line, mean, at = barriers(alpha, np.array([0.0, 2.0, 4.0]))
    assert line == pytest.approx(1.0)  # 2 − (0.75·0 + 0.25·4)
    assert mean == pytest.approx(2.0)  # max 4 − (0 + 4)/2
    assert at == 0.25
    assert barriers(alpha, np.array([1.0, 0.5, 1.0]))[:2] == (0.0, 0.0)


def test_checkpoint_against_itself_has_zero_barrier(trained_mlp):
    model, x, y = trained_mlp
    p = _problem(model, x, y)
    r = lmc(p, [model.state_dict()], points=5)
    assert np.allclose(r.curves["loss"], p.loss(), rtol=0, atol=1e-12)
    assert all(abs(v) < 1e-12 for k, v in r.barriers.items() if k != "barrier_alpha")


def test_endpoints_equal_directly_computed_losses(trained_mlp):
    model, x, y = trained_mlp
    other = mlp(seed=5).double()
    _train(other.float(), x.float(), y, steps=5)
    other = other.double()
    r = lmc(_problem(model, x, y, bs=40), [other.state_dict()], points=4)
    with torch.no_grad():
        for m, k in ((model, 0), (other, -1)):
            out = m(x)
            assert r.curves["loss"][k] == pytest.approx(float(nn.functional.cross_entropy(out, y)))
            assert r.curves["accuracy"][k] == pytest.approx(
                float((out.argmax(1) == y).double().mean())
            )


def test_permuted_mlp_barrier_vanishes_after_alignment(trained_mlp):
    model, x, y = trained_mlp
    b = _permuted(model, x)
    raw = lmc(_problem(model, x, y), [b], points=5)
    assert raw.barriers["barrier_loss"] > 0.05
    aligned = lmc(_problem(model, x, y), [b], points=5, align="weights")
    assert aligned.barriers["barrier_loss"] < 1e-9
    assert aligned.alignment["distance_after"] == 0.0 and aligned.alignment["moved"].sum() > 0


def _bn_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x, y = blobs(48, (2, 4, 4), seed=1)
    model = cnn()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.5  # a few steps of training already give settled running statistics
    return _train(model, x, y, steps=12).double(), x.double(), y


def test_permuted_cnn_with_batchnorm_reset_and_alignment():
    model, x, y = _bn_model()
    b = _permuted(model, x)
    raw = lmc(_problem(model, x, y), [b], points=5, bn_batches=3)
    assert raw.bn == "reset" and raw.barriers["barrier_loss"] > 0.05
    aligned = lmc(_problem(model, x, y), [b], points=5, bn_batches=3, align="weights")
    assert aligned.barriers["barrier_loss"] < 1e-9


def test_reset_statistics_equal_those_computed_from_the_data():
    model, x, y = _bn_model()
    p = _problem(model, x, y)
    ip = Interpolation(p, None, "reset", bn_batches=2, seed=0)
    assert len(ip.bn_batches) == 2 and all(len(b) == 16 for b in ip.bn_batches)
    used = torch.cat(ip.bn_batches)
    assert len(torch.unique(used, dim=0)) == 32  # fresh batches: no sample reused
    state = ip.reset(dict(model.state_dict()))
    with torch.no_grad():
        pre = [model[0](b) for b in ip.bn_batches]  # pre-BN activations of the first conv
    mean = torch.stack([a.mean(dim=(0, 2, 3)) for a in pre]).mean(0)
    var = torch.stack([a.transpose(0, 1).reshape(6, -1).var(1) for a in pre]).mean(0)
    torch.testing.assert_close(state["1.running_mean"], mean)
    torch.testing.assert_close(state["1.running_var"], var)


def test_reset_recovers_endpoint_accuracy():
    model, x, y = _bn_model()
    with torch.no_grad():  # calibrate A's running stats on the whole set (cumulative average)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model.train()
        for i in range(0, 48, 16):
            model(x[i : i + 16])
        model.eval()
    p = _problem(model, x, y)
    own = p.evaluate()
    r = lmc(p, [_permuted(model, x)], points=3, bn="reset", bn_batches=3)
    for k in (0, -1):  # A, and B = a permuted copy of A
        assert abs(r.curves["accuracy"][k] - own["accuracy"]) <= 1 / 48 + 1e-12
        assert r.curves["loss"][k] == pytest.approx(own["loss"], rel=0.05)
    assert r.curves["loss"][0] == pytest.approx(r.curves["loss"][-1], rel=1e-9)


def test_keep_a_and_interpolate_buffers():
    model, x, y = _bn_model()
    p = _problem(model, x, y)
    b = {k: v.clone() for k, v in model.state_dict().items()}
    b["1.running_mean"] += 1.0
    for mode, expected in (("keep-a", 0.0), ("interpolate", 0.25)):
        ip = Interpolation(p, None, mode, bn_batches=1, seed=0)
        s = ip.state(model.state_dict(), b, 0.25, ip.every, "a")
        shift = s["1.running_mean"] - model.state_dict()["1.running_mean"]
        torch.testing.assert_close(shift, torch.full_like(shift, expected))


def test_convex_problem_has_no_loss_barrier():
    x, y = blobs(80, (5,), seed=2)
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3).double(), nn.Linear(5, 3).double()
    with torch.no_grad():
        b.weight.mul_(8.0)  # far apart, and random: convexity alone keeps the loss under the line
    r = lmc(_problem(a, x.double(), y), [b.state_dict()], points=9)
    line = (1 - r.alpha) * r.curves["loss"][0] + r.alpha * r.curves["loss"][-1]
    assert np.all(r.curves["loss"] <= line + 1e-12)
    assert r.barriers["barrier_loss"] <= 1e-12


def test_refine_adds_points_around_the_maximum(trained_mlp):
    model, x, y = trained_mlp
    r = lmc(_problem(model, x, y), [_permuted(model, x)], points=5, refine=3)
    assert len(r.alpha) == 8 and r.alpha[0] == 0 and r.alpha[-1] == 1
    assert np.all(np.diff(r.alpha) > 0)
    k = int(np.argmax(r.curves["loss"]))
    assert 0.0 < r.alpha[k] < 1.0


def test_layerwise_only_the_changed_layer_has_a_path(trained_mlp):
    model, x, y = trained_mlp
    b = {k: v.clone() for k, v in model.state_dict().items()}
    b["4.weight"] = b["4.weight"] * -1.0  # B differs from A in the last layer only
    r = lmc(_problem(model, x, y), [b], points=4, layerwise=True)
    assert set(r.layers) == {"0", "2", "4"}
    loss_a = r.curves["loss"][0]
    assert np.allclose(r.layers["0"]["loss_rest_a"], loss_a, atol=1e-12)
    assert np.allclose(r.layers["4"]["loss_rest_a"], r.curves["loss"], atol=1e-12)
    assert np.allclose(r.layers["0"]["loss_rest_b"], r.curves["loss"][-1], atol=1e-12)


def test_three_checkpoints_give_a_symmetric_matrix(trained_mlp):
    model, x, y = trained_mlp
    b = _permuted(model, x)
    r = lmc(_problem(model, x, y), [b, model.state_dict()], points=5)
    m = r.pairwise["barrier_loss"]
    assert m.shape == (3, 3) and np.allclose(m, m.T) and np.allclose(np.diag(m), 0)
    assert m[0, 1] == pytest.approx(r.barriers["barrier_loss"])
    assert abs(m[0, 2]) < 1e-12  # C is A
    assert m[1, 2] == pytest.approx(m[0, 1], rel=1e-9)  # B–C is B–A again


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scan_with_reset_and_alignment_matches_cpu():
    model, x, y = _bn_model()
    b = _permuted(model, x)
    cpu = lmc(_problem(model, x, y), [b], points=3, bn_batches=2, align="weights")
    gpu_problem = Problem(model, x, y, batch_size=16, dtype=torch.float64, device="cuda")
    gpu = lmc(gpu_problem, [b], points=3, bn_batches=2, align="weights")
    np.testing.assert_allclose(gpu.curves["loss"], cpu.curves["loss"], rtol=1e-9)
    assert gpu.barriers["barrier_loss"] < 1e-9
