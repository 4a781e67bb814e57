"""--verify: the operator check flags a model whose double backward is wrong, and only that."""

from __future__ import annotations

import os

import torch
from cli_helpers import run_cli
from helpers import blobs, small_problem
from torch import nn

from landscape.problem import Problem
from landscape.verify import verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _WrongCube(torch.autograd.Function):
    """x³ with a right first derivative but a backward that hides its dependence on x, so the
    double backward (the Hessian) misses the 6x term: a deliberately wrong second derivative."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x.detach() ** 2


class WrongNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(5, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x):
        return self.b(_WrongCube.apply(torch.tanh(self.a(x))))


def test_a_right_model_passes_at_round_off():
    check = verify(small_problem(batch_size=30))
    assert check.ok and check.symmetry < 1e-12 and check.fd_gap < 1e-6


def test_a_layernorm_model_passes_with_plain_double_backward():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = blobs(n=60)
    check = verify(Problem(model, x, y, batch_size=25, dtype=torch.float64))
    assert check.ok and check.fd_gap < 1e-6


def test_a_wrong_double_backward_is_flagged():
    x, y = blobs(n=60)
    check = verify(Problem(WrongNet(), x, y, batch_size=25, dtype=torch.float64))
    assert not check.ok and check.fd_gap > 1e-2
    assert "finite-difference gap" in check.message()


def test_the_cli_stores_the_check_and_warns_only_when_wrong(tmp_path):
    import h5py

    out = tmp_path / "s.h5"
    r = run_cli("spectrum", os.path.join(ROOT, "data", "demo_a.pt"), "--top-k", "1",
                "--no-density", "--no-plot", "-o", str(out))
    assert r.code == 0 and "warning" not in r.stderr, r.stderr
    with h5py.File(out) as f:
        assert f.attrs["verify_symmetry"] < 1e-3 and f.attrs["verify_fd_gap"] < 5e-2
    wrong = tmp_path / "wrong.py"
    wrong.write_text(open(__file__).read().split("def test_")[0].replace(
        "from cli_helpers import run_cli\nfrom helpers import blobs, small_problem\n", ""
    ).replace("from landscape.problem import Problem\nfrom landscape.verify import verify\n", ""))
    x, y = blobs(n=40)
    torch.save({"x": x.float(), "y": y}, tmp_path / "d.pt")
    torch.save({"state_dict": WrongNet().state_dict(),
                "landscape": {"model": "wrong.py:WrongNet", "data": "d.pt"}}, tmp_path / "w.pt")
    r = run_cli("spectrum", str(tmp_path / "w.pt"), "--top-k", "1", "--no-density", "--no-plot",
                "-o", str(tmp_path / "w.h5"))
    assert r.code == 0 and "curvature products look wrong" in r.stderr, r.stderr
