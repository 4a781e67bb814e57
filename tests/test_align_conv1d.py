"""Alignment of transformers-style ``Conv1D`` layers (weight stored (in, out), y = x·W + b), as
GPT-2 uses: a hand-permuted copy is recovered exactly (known answer: the inverse permutation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_align import _train, blobs
from torch import nn

from landscape.align import align_weights, permutation_spec
from landscape.analyses.lmc import lmc
from landscape.errors import InputError
from landscape.problem import Problem


class Conv1D(nn.Module):
    """The layout of ``transformers.pytorch_utils.Conv1D``: weight (nx, nf), y = x W + b."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * nx**-0.5)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class NewGELU(nn.Module):
    """GPT-2's activation, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), traced op by op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1DMLP(nn.Module):
    def __init__(self, d_in: int = 6, hidden: int = 16, d_out: int = 3, act: str = "tanh") -> None:
        super().__init__()
        self.fc = Conv1D(hidden, d_in)
        self.act = nn.Tanh() if act == "tanh" else NewGELU()
        self.proj = Conv1D(d_out, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


def _trained(act: str) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    x, y = blobs(96, (6,))
    torch.manual_seed(0)
    return _train(Conv1DMLP(act=act), x, y).double(), x.double(), y


def _permuted(model: nn.Module, perm: torch.Tensor) -> dict[str, torch.Tensor]:
    """B = A with its hidden units relabelled by hand: unit i of B is unit perm[i] of A."""
    s = {k: v.detach().clone() for k, v in model.state_dict().items()}
    s["fc.weight"] = s["fc.weight"][:, perm]  # (in, out): hidden units are columns
    s["fc.bias"] = s["fc.bias"][perm]
    s["proj.weight"] = s["proj.weight"][perm, :]  # (in, out): hidden units are rows
    return s


def test_conv1d_groups_use_the_transposed_axes():
    spec = permutation_spec(Conv1DMLP(), torch.randn(4, 6))
    assert spec.sizes == {"fc": 16}
    assert set(spec.groups["fc"]) == {("fc.weight", 1), ("fc.bias", 0), ("proj.weight", 0)}


@pytest.mark.parametrize("act", ["tanh", "new_gelu"])
def test_conv1d_mlp_permutation_recovered_exactly(act):
    model, x, y = _trained(act)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(7))
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    b = _permuted(model, perm)
    with torch.no_grad():  # the same function with different weights
        out_a = model(x)
        model.load_state_dict(b)
        out_b = model(x)
        model.load_state_dict(a)
    torch.testing.assert_close(out_a, out_b)
    aligned, match, _ = align_weights(model, a, b, x[:4])
    assert torch.equal(match.perms["fc"], torch.argsort(perm))
    assert all(torch.equal(aligned[k], a[k]) for k in a)
    p = Problem(model, x, y, batch_size=32, dtype=torch.float64)
    raw = lmc(p, [b], points=5)
    r = lmc(p, [b], points=5, align="weights")
    print(
        f"Conv1D MLP ({act}): barrier {raw.barriers['barrier_loss']:.3g} unaligned, "
        f"{r.barriers['barrier_loss']:.3g} aligned"
    )
    assert raw.barriers["barrier_loss"] > 0.05
    assert abs(r.barriers["barrier_loss"]) <= 1e-6
    assert r.alignment["distance_after"] == 0.0 and r.alignment["moved"].sum() > 0
    assert np.allclose(r.curves["loss"], r.curves["loss"][0], rtol=0, atol=1e-12)


def test_a_conv1d_lookalike_without_nf_is_not_taken_for_one():
    class Conv1D(nn.Linear):  # noqa: N801 - the name alone must not decide
        pass

    plain = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), Conv1D(5, 2))
    spec = permutation_spec(plain, torch.randn(3, 4))  # an nn.Linear subclass: (out, in)
    assert ("2.weight", 1) in spec.groups["0"]


def test_gpt2_mlp_recovered_and_whole_gpt2_refused_naming_it():
    """With transformers installed: GPT-2's own MLP block (Conv1D, gelu_new, Conv1D) aligns
    exactly; the whole model, whose forward torch.fx cannot trace, is refused naming its class."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    mlp = model.transformer.h[0].mlp
    spec = permutation_spec(mlp, torch.randn(2, 8, 8))
    assert set(spec.groups["c_fc"]) == {("c_fc.weight", 1), ("c_fc.bias", 0), ("c_proj.weight", 0)}
    a = {k: v.detach().clone() for k, v in mlp.state_dict().items()}
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(7))
    b = dict(a, **{"c_fc.weight": a["c_fc.weight"][:, perm], "c_fc.bias": a["c_fc.bias"][perm],
                   "c_proj.weight": a["c_proj.weight"][perm]})  # fmt: skip
    aligned, match, _ = align_weights(mlp, a, b, torch.randn(2, 8, 8))
    assert torch.equal(match.perms["c_fc"], torch.argsort(perm))
    assert all(torch.equal(aligned[k], a[k]) for k in a)
    with pytest.raises(InputError) as e:
        permutation_spec(model, torch.randint(0, 16, (2, 8)))
    assert "no permutable hidden units" not in str(e.value)
    assert "GPT2LMHeadModel" in str(e.value) or "transformer." in str(e.value), str(e.value)


MODEL = """
import torch
from torch import nn


class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * nx**-0.5)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(size_out)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.proj = Conv1D(16, 6), Conv1D(3, 16)

    def forward(self, x):
        return self.proj(torch.tanh(self.fc(x)))
"""


def test_cli_lmc_align_weights_on_conv1d_checkpoints(tmp_path, monkeypatch):
    from cli_helpers import run_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(MODEL)
    model, x, y = _trained("tanh")
    np.savez("data.npz", x=x.float().numpy(), y=y.numpy())
    a = {k: v.float() for k, v in model.state_dict().items()}
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    b = {k: v.float() for k, v in _permuted(model, perm).items()}
    spec = {"model": "model.py:Net", "data": "data.npz"}
    for name, state in (("a.pt", a), ("b.pt", b)):
        torch.save({"state_dict": state, "landscape": spec}, name)
    run = run_cli("lmc", "a.pt", "b.pt", "--points", "5", "--align", "weights", "--json",
                  "--no-plot", "-o", "r.h5")  # fmt: skip
    assert run.code == 0, run.stderr
    out = run.json()["lmc"]
    assert out["alignment"]["distance_after"] == 0.0 and out["alignment"]["groups"] == ["fc"]
    assert abs(out["barrier_loss"]) <= 1e-6
