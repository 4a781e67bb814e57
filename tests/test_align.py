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


def test_attention_keeps_its_units_and_the_rest_of_a_transformer_is_recovered():
    """The split into heads fixes qkv's output units (named in ``fixed``); the residual stream
    (embeddings, norms, every projection into and out of it, the head) and each MLP's hidden
    units are still permuted, and a randomly permuted copy is recovered exactly. Before, any
    transformer stopped alignment ("applies split to permuted features")."""
    torch.manual_seed(0)
    model = tinygpt(vocab=16, d_model=8, n_layer=2, n_head=2, seq_len=8).eval()
    ids = torch.randint(0, 16, (6, 8), generator=torch.Generator().manual_seed(0))
    spec = permutation_spec(model, ids[:2])
    assert spec.fixed == {f"module blocks.{i}.attn": "applies split to permuted features"
                          for i in range(2)}
    residual = next(g for g, axes in spec.groups.items() if ("tok.weight", 1) in axes)
    assert {("pos.weight", 1), ("head.weight", 1), ("blocks.1.attn.proj.weight", 0),
            ("blocks.0.attn.qkv.weight", 1)} <= set(spec.groups[residual])
    assert not any(k.startswith("blocks.0.attn.qkv") and ax == 0
                   for axes in spec.groups.values() for k, ax in axes)
    assert {"blocks.0.mlp.0", "blocks.1.mlp.0"} <= set(spec.groups)
    _check_recovery(model, ids)


def test_flatten_of_spatial_channels_stops_alignment():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4, 2))
    with pytest.raises(InputError, match=r"module 2 \(Flatten\)"):
        permutation_spec(model, torch.randn(2, 1, 4, 4))


def test_output_units_are_never_permuted():
    spec = permutation_spec(mlp(), torch.randn(4, 6))
    assert not any(k.startswith("4.") and ax == 0 for g in spec.groups.values() for k, ax in g)


class _LayerNorm(nn.Module):  # nanoGPT's: F.layer_norm with an optional bias
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(d))
        self.bias = nn.Parameter(0.1 * torch.randn(d))

    def forward(self, x):
        return nn.functional.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = _LayerNorm(d), _LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.size()  # noqa: N806 - as nanoGPT writes it
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.heads, C // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / (C // self.heads) ** 0.5
        mask = torch.ones(T, T).tril() == 0
        y = att.masked_fill(mask, float("-inf")).softmax(-1) @ v
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x))))


class _NanoGPTLike(nn.Module):
    def __init__(self, vocab: int = 20, d: int = 8, t: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(t, d)
        self.h = nn.ModuleList([_Block(d, 2), _Block(d, 2)])
        self.ln_f = _LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # tied, as nanoGPT ties them

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def test_nanogpt_like_model_aligns_its_residual_stream_through_tied_weights():
    """nanoGPT's own LayerNorm (F.layer_norm), x.size(), a tied embedding and head, a split
    into heads: the residual stream and MLPs are permuted, a permuted copy recovered exactly."""
    model = _NanoGPTLike().eval()
    ids = torch.randint(0, 20, (5, 6), generator=torch.Generator().manual_seed(1))
    spec = permutation_spec(model, ids[:2])
    assert set(spec.fixed) == {"module h.0", "module h.1"}  # the split of c_attn's output
    residual = next(g for g, axes in spec.groups.items() if ("lm_head.weight", 1) in axes)
    assert {("wte.weight", 1), ("wpe.weight", 1), ("h.0.ln_1.weight", 0), ("ln_f.bias", 0),
            ("h.1.mlp_proj.weight", 0)} <= set(spec.groups[residual])
    _check_recovery(model, ids)
