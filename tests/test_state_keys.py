"""State-dict keys as training code writes them: a Lightning module holding more than the network,
an explicit prefix, tied embeddings saved once through safetensors."""

from __future__ import annotations

import json

import pytest
import torch
from cli_helpers import run_cli
from helpers import blobs
from torch import nn

from landscape.errors import InputError
from landscape.loading import load_checkpoint, load_into, read_optimizer
from landscape.loading.zoo import mlp

KWARGS = {"in_dim": 5, "hidden": [6], "out_dim": 3}


class LitLike(nn.Module):
    """What a LightningModule holds: the network under ``net`` and a weighted criterion."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = mlp(**KWARGS)
        self.criterion = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]))

    def forward(self, x):
        return self.net(x)


def lightning_checkpoint(path, named: bool = False):
    """Lightning's documented layout, written by hand; returns the module after training."""
    module = LitLike()
    x, y = blobs(n=40)
    params = module.named_parameters() if named else module.parameters()
    opt = torch.optim.Adam(params, lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        module.criterion(module(x.float()), y).backward()
        opt.step()
    torch.save(
        {
            "epoch": 0,
            "global_step": 3,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": module.state_dict(),
            "loops": {},
            "callbacks": {},
            "optimizer_states": [opt.state_dict()],
            "lr_schedulers": [],
        },
        path,
    )
    return module


@pytest.mark.parametrize("named", [False, True])
def test_lightning_module_with_a_weighted_criterion(tmp_path, named):
    path = tmp_path / "lit.ckpt"
    module = lightning_checkpoint(path, named)
    ckpt = load_checkpoint(str(path))
    assert ckpt.format == "lightning" and "criterion.weight" in ckpt.state_dict
    net = mlp(**KWARGS)
    notes = load_into(net, ckpt.state_dict)
    assert notes == ["ignored 1 checkpoint key(s) beside the model's (under 'net.'): "
                     "criterion.weight"]
    for key, value in module.net.state_dict().items():
        assert torch.equal(net.state_dict()[key], value)
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    state = read_optimizer(ckpt.optimizer, shapes)
    assert state.covered == list(shapes)
    assert state.order == ("param_names" if named else "model")


def test_lightning_checkpoint_runs_on_the_command_line(tmp_path):
    path = tmp_path / "lit.ckpt"
    lightning_checkpoint(path)
    x, y = blobs(n=40)
    torch.save({"x": x.float(), "y": y}, tmp_path / "data.pt")
    r = run_cli("sharpness", path, "--model", "mlp", "--model-kwargs", json.dumps(KWARGS),
                "--data", tmp_path / "data.pt", "--top-k", "1", "--random", "0", "--json",
                "--no-plot", "-o", tmp_path / "s.h5")
    assert r.code == 0, r.stderr
    assert r.json()["sharpness"]["update_source"] == "adam"


def test_missing_keys_are_named_relative_to_the_prefix_holding_the_rest():
    sd = {f"net.{k}": v for k, v in mlp(**KWARGS).state_dict().items()}
    sd["criterion.weight"] = torch.ones(3)
    moved = sd.pop("net.layers.2.bias")
    with pytest.raises(InputError) as e:
        load_into(mlp(**KWARGS), sd)
    assert str(e.value) == ("checkpoint is missing 1 model key(s) under the prefix 'net.': "
                            "layers.2.bias")
    sd["head.layers.2.bias"] = moved
    with pytest.raises(InputError, match=r"holds head.layers.2.bias under another prefix"):
        load_into(mlp(**KWARGS), sd)


def test_explicit_prefix_and_ambiguous_prefixes():
    torch.manual_seed(0)
    live, ema = mlp(**KWARGS).state_dict(), mlp(**KWARGS).state_dict()
    sd = {**{f"model.{k}": v for k, v in live.items()}, **{f"ema.{k}": v for k, v in ema.items()}}
    with pytest.raises(InputError, match=r"several prefixes \('ema.', 'model.'\).*`state_prefix`"):
        load_into(mlp(**KWARGS), sd)
    net = mlp(**KWARGS)
    notes = load_into(net, sd, prefix="ema")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in ema.items())
    assert "ignored 4 checkpoint key(s)" in notes[0] and "model.layers.0.weight" in notes[0]
    with pytest.raises(InputError, match="no checkpoint key starts with the prefix 'teacher.'"):
        load_into(net, sd, prefix="teacher.")


class TinyLM(nn.Module):
    """GPT-2's layout: the output layer shares the token embedding's Parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(11, 4), "ln_f": nn.LayerNorm(4)})
        self.lm_head = nn.Linear(4, 11, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, idx):
        return self.lm_head(self.transformer.ln_f(self.transformer.wte(idx)))


def test_tied_embeddings_saved_once_in_safetensors(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = TinyLM()
    sd = model.state_dict()
    with pytest.raises(RuntimeError):  # safetensors refuses shared tensors ...
        save_file(sd, str(tmp_path / "both.safetensors"))
    sd.pop("lm_head.weight")  # ... so Hugging Face saves the tied weight once
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    ckpt = load_checkpoint(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in ckpt.state_dict
    torch.manual_seed(1)
    fresh = TinyLM()
    notes = load_into(fresh, ckpt.state_dict)
    assert notes == ["lm_head.weight is tied to transformer.wte.weight in the model: "
                     "filled from it"]
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    assert torch.equal(fresh.lm_head.weight, model.transformer.wte.weight)
    idx = torch.arange(11)
    torch.testing.assert_close(fresh(idx), model(idx), rtol=0, atol=0)
