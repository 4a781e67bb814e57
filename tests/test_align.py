"""Permutation groups from torch.fx tracing and weight matching: a permuted copy of a trained
network is recovered exactly (known answer: the inverse of the permutation applied)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape.align import align_weights, permutation_spec, permute_state, random_permutations
from landscape.errors import InputError
from landscape.loading.zoo import resnet, tinygpt


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 25) -> nn.Module:
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3)
    )


def cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip


def blobs(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, *shape, generator=g) + y.view(-1, *([1] * len(shape))).float()
    return x, y


def _check_recovery(model: nn.Module, x: torch.Tensor) -> None:
    spec = permutation_spec(model, x[:4])
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    perms = random_permutations(spec, seed=1)
    assert any((p != torch.arange(len(p))).any() for p in perms.values())
    b = permute_state(spec, perms, a)
    with torch.no_grad():  # the permuted copy is the same function ...
        out_a = model(x)
        model.load_state_dict(b)
        out_b = model(x)
        model.load_state_dict(a)
    torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-5)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # ... with different weights
    aligned, match, _ = align_weights(model, a, b, x[:4], seed=0)
    for g, p in perms.items():  # found = inverse of the applied permutation
        assert torch.equal(match.perms[g], torch.argsort(p)), g
    for k in a:
        assert torch.equal(aligned[k], a[k]), k
    assert match.distance_before > 0.1 and match.distance_after == 0.0


def test_mlp_groups_follow_hidden_units():
    spec = permutation_spec(mlp(), torch.randn(4, 6))
    assert spec.sizes == {"0": 12, "2": 10}
    assert set(spec.groups["0"]) == {("0.weight", 0), ("0.bias", 0), ("2.weight", 1)}
    assert set(spec.groups["2"]) == {("2.weight", 0), ("2.bias", 0), ("4.weight", 1)}


def test_mlp_permutation_recovered_exactly():
    x, y = blobs(96, (6,))
    _check_recovery(_train(mlp(), x, y), x)


def test_cnn_with_batchnorm_recovered_exactly():
    x, y = blobs(32, (2, 4, 4))
    model = _train(cnn(), x, y, steps=10)  # running stats are now non-trivial
    spec = permutation_spec(model, x[:4])
    assert ("1.running_var", 0) in spec.groups["0"] and ("3.weight", 1) in spec.groups["0"]
    assert ("8.weight", 1) in spec.groups["3"]
    _check_recovery(model, x)


def test_resnet_residual_adds_tie_permutations():
    torch.manual_seed(0)
    model = resnet(width=4, blocks=[2, 1], num_classes=3, in_channels=2).eval()
    x = torch.randn(4, 2, 6, 6)
    spec = permutation_spec(model, x)
    stem = set(spec.groups["stem"])
    # stem, both residual branches of stage 0 and the downsampling shortcut's input share one
    assert {("stem.weight", 0), ("stages.0.0.bn2.weight", 0), ("stages.0.1.conv2.weight", 0),
            ("stages.1.0.shortcut.0.weight", 1)} <= stem  # fmt: skip
    assert ("fc.weight", 1) in spec.groups["stages.1.0.conv2"]
    assert ("stages.1.0.shortcut.0.weight", 0) in spec.groups["stages.1.0.conv2"]
    _check_recovery(model, x)


def test_attention_stops_alignment_naming_the_module():
    with pytest.raises(InputError, match=r"blocks\.0\.attn"):
        permutation_spec(tinygpt(vocab=16, d_model=8, n_layer=1, n_head=2, seq_len=8),
                         torch.randint(0, 16, (2, 8)))  # fmt: skip


def test_flatten_of_spatial_channels_stops_alignment():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4, 2))
    with pytest.raises(InputError, match=r"module 2 \(Flatten\)"):
        permutation_spec(model, torch.randn(2, 1, 4, 4))


def test_output_units_are_never_permuted():
    spec = permutation_spec(mlp(), torch.randn(4, 6))
    assert not any(k.startswith("4.") and ax == 0 for g in spec.groups.values() for k, ax in g)
