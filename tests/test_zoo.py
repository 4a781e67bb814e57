"""Model specs (zoo names, module and file factories) and the built-in models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.errors import InputError
from landscape.loading import ZOO, build_model


def test_mlp_shapes_and_options():
    model = build_model("mlp")
    assert model(torch.randn(5, 64)).shape == (5, 10)
    assert model(torch.randn(5, 8, 8)).shape == (5, 10)  # images are flattened
    deep = build_model("mlp", {"in_dim": 3, "hidden": [4, 6], "out_dim": 2,
                               "activation": "gelu", "bias": False})
    assert deep(torch.randn(2, 3)).shape == (2, 2)
    assert all(not n.endswith("bias") for n, _ in deep.named_parameters())
    assert build_model("mlp", {"hidden": []})(torch.randn(1, 64)).shape == (1, 10)
    with pytest.raises(InputError, match="activation 'swish'"):
        build_model("mlp", {"activation": "swish"})


def test_resnet_with_batchnorm():
    model = build_model("resnet", {"width": 4, "blocks": [2, 1, 1], "num_classes": 7})
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    x = torch.randn(3, 3, 32, 32)
    assert model.train()(x).shape == (3, 7)
    assert model.eval()(x).shape == (3, 7)
    assert "stages.1.0.shortcut.0.weight" in model.state_dict()  # 1x1 conv at the transition
    assert "bn.running_mean" in model.state_dict()
    plain = build_model("resnet", {"width": 4, "norm": "none", "in_channels": 1})
    assert plain(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(InputError, match="norm 'layer'"):
        build_model("resnet", {"norm": "layer"})


def test_tinygpt_shapes_and_causality():
    model = build_model("tinygpt", {"vocab": 11, "d_model": 8, "n_head": 2, "seq_len": 6})
    idx = torch.randint(0, 11, (2, 6))
    out = model(idx)
    assert out.shape == (2, 6, 11)
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    assert torch.allclose(model(changed)[:, :-1], out[:, :-1], atol=1e-6)  # causal
    assert model(idx[:, :3]).shape == (2, 3, 11)
    with pytest.raises(InputError, match="seq_len=6"):
        model(torch.randint(0, 11, (1, 7)))
    with pytest.raises(InputError, match="not divisible"):
        build_model("tinygpt", {"d_model": 10, "n_head": 3})


@pytest.mark.parametrize("name", sorted(ZOO))
def test_construction_is_deterministic(name):
    torch.manual_seed(7)
    a = ZOO[name]()
    torch.manual_seed(7)
    b = ZOO[name]()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_double_backward_through_tinygpt():
    """Hessian-vector products need second derivatives through attention."""
    torch.manual_seed(0)
    model = build_model("tinygpt", {"vocab": 7, "d_model": 8, "n_layer": 1, "seq_len": 5})
    idx = torch.randint(0, 7, (2, 5))
    loss = nn.functional.cross_entropy(model(idx).flatten(0, 1), idx.flatten())
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * torch.ones_like(g)).sum() for g in grads)
    hvp = torch.autograd.grad(dot, params)
    assert all(torch.isfinite(h).all() for h in hvp)


def test_build_model_specs(tmp_path):
    (tmp_path / "mine.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Linear):\n    def __init__(self, n=3):\n        super().__init__(n, 2)\n"
        "def broken():\n    raise ValueError('no GPU here')\n"
        "def not_module():\n    return 42\n"
    )
    (tmp_path / "bad.py").write_text("import does_not_exist_anywhere\n")
    base = str(tmp_path)
    assert build_model("mine.py:Net", {"n": 5}, base_dir=base).in_features == 5
    assert isinstance(build_model("mlp", {"hidden": [8, 8]}), nn.Module)
    assert isinstance(build_model("torch.nn:Linear", {"in_features": 2, "out_features": 1}),
                      nn.Linear)
    cases = {
        "bad.py:make": "bad.py.*ModuleNotFoundError.*does_not_exist_anywhere",
        "no_such_pkg_xyz.models:make": "cannot import module 'no_such_pkg_xyz.models'",
        "mine.py:missing": "no attribute 'missing'",
        "mine.py:broken": "raised.*ValueError: no GPU here",
        "mine.py:not_module": "returned int, not a torch.nn.Module",
        "absent.py:make": "absent.py' not found",
        "nonsense": "unknown model 'nonsense'",
    }
    for spec, message in cases.items():
        with pytest.raises(InputError, match=message):
            build_model(spec, base_dir=base)
    with pytest.raises(InputError, match="unexpected keyword"):
        build_model("mlp", {"widht": 3})
