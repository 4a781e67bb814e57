"""Streamed data: dict batches, keyword models, padded targets, shuffling and one-shot sources,
all checked against the exact float64 Hessian of the whole set or the tensor path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import blobs, exact_hessian, tanh_mlp
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset, WeightedRandomSampler

from landscape.analyses.spectrum import spectrum
from landscape.curvature import CurvatureOperator
from landscape.errors import InputError
from landscape.losses import IGNORE, CausalLM, FunctionLoss
from landscape.problem import Problem


class KeywordMLP(nn.Module):
    """A model called as model(features=..., scale=...), as Hugging Face models take inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tanh_mlp()

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.net(features * scale[:, None])}


class DictSet(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.x[i], "scale": torch.tensor(1.0, dtype=torch.float64),
                "labels": self.y[i]}


def _eigs(problem: Problem, k: int = 4) -> np.ndarray:
    return spectrum(problem, top_k=k, tol=1e-12, density=False).whole.eigenvalues


def test_dict_batches_with_uneven_last_batch_match_the_tensor_path():
    x, y = blobs(n=100)
    tensors = Problem(tanh_mlp(), x, y, batch_size=100, dtype=torch.float64)
    loader = DataLoader(DictSet(x, y), batch_size=32)  # 32 + 32 + 32 + 4
    model = KeywordMLP()
    streamed = Problem(model, loader, dtype=torch.float64, cache=False)
    assert streamed.n_batches == 4 and not streamed.cached and streamed.n_samples == 100
    assert any("logits" in note for note in streamed.notes)
    exact = np.sort(np.linalg.eigvalsh(exact_hessian(tensors).numpy()))[::-1][:4]
    np.testing.assert_allclose(_eigs(streamed), exact, rtol=0, atol=1e-10)
    np.testing.assert_allclose(_eigs(tensors), exact, rtol=0, atol=1e-10)
    assert streamed.loss() == pytest.approx(tensors.loss(), abs=1e-14)
    assert streamed.evaluate()["accuracy"] == tensors.evaluate()["accuracy"]


def _padded_tokens(n: int = 12, t: int = 7, vocab: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, t), generator=g)
    lengths = torch.randint(2, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    return ids, mask


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 5, dim: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(vocab, dim)
        self.out = nn.Linear(dim, vocab)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.emb(input_ids)))


def _lm_batches(ids, mask, bs):
    return [{"input_ids": ids[i : i + bs], "attention_mask": mask[i : i + bs],
             "labels": ids[i : i + bs]} for i in range(0, len(ids), bs)]


def test_causal_lm_mean_is_over_real_targets_whatever_the_batching():
    ids, mask = _padded_tokens()
    model = TinyLM().double()
    real = mask[:, 1:].bool()

    def whole_set_loss(theta):
        # the known answer: the mean of -log p over every real next-token target of the set
        names = [n for n, _ in model.named_parameters()]
        shapes = [p.shape for _, p in model.named_parameters()]
        parts = torch.split(theta, [int(np.prod(s)) for s in shapes])
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        logits = torch.func.functional_call(model, params, (ids, mask))
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
        return -logp[real].mean()

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    expected = float(whole_set_loss(theta))
    exact = np.sort(np.linalg.eigvalsh(torch.func.hessian(whole_set_loss)(theta).numpy()))[::-1]
    values, spectra = [], []
    for bs in (1, 5, 12):
        p = Problem(TinyLM(), _lm_batches(ids, mask, bs), loss="causal-lm", dtype=torch.float64)
        assert p.n_targets == int(real.sum())
        values.append(p.loss())
        spectra.append(_eigs(p, 3))
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    for found in spectra:
        np.testing.assert_allclose(found, exact[:3], rtol=0, atol=1e-10)


def test_padding_never_counts_as_wrong_and_ignore_index_is_skipped():
    x, y = blobs(n=40)
    y_pad = y.clone()
    y_pad[::4] = IGNORE
    p = Problem(tanh_mlp(), x, y_pad, batch_size=7, dtype=torch.float64)
    keep = y_pad != IGNORE
    ref = Problem(tanh_mlp(), x[keep], y[keep], batch_size=100, dtype=torch.float64)
    assert p.n_targets == int(keep.sum())
    assert p.loss() == pytest.approx(ref.loss(), abs=1e-14)
    assert p.evaluate()["accuracy"] == pytest.approx(ref.evaluate()["accuracy"], abs=1e-15)


def test_causal_lm_fisher_samples_keep_padding():
    ids, mask = _padded_tokens()
    loss = CausalLM()
    logits = torch.randn(*ids.shape, 5, dtype=torch.float64)
    labels = ids.masked_fill(mask == 0, IGNORE)
    drawn = loss.sample_targets(logits, labels, torch.Generator().manual_seed(0))
    assert drawn.shape == labels.shape
    assert torch.equal(drawn == IGNORE, labels == IGNORE)


def test_a_users_classification_loss_gets_accuracy_and_a_fisher():
    x, y = blobs(n=60)

    def my_ce(out, target):
        return torch.nn.functional.cross_entropy(out, target)

    mine = Problem(tanh_mlp(), x, y, loss=FunctionLoss(my_ce, classification=True),
                   batch_size=25, dtype=torch.float64)
    builtin = Problem(tanh_mlp(), x, y, loss="cross-entropy", batch_size=25, dtype=torch.float64)
    assert mine.evaluate()["accuracy"] == builtin.evaluate()["accuracy"]
    v = torch.randn(3, mine.size, dtype=torch.float64)
    a = CurvatureOperator(mine, "fisher", seed=3)(v)
    b = CurvatureOperator(builtin, "fisher", seed=3)(v)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_a_shuffling_loader_is_read_in_order_and_gives_the_same_answer():
    x, y = blobs(n=50)
    ordered = Problem(tanh_mlp(), DataLoader(TensorDataset(x, y), batch_size=8),
                      dtype=torch.float64)
    shuffled = Problem(tanh_mlp(), DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True),
                       dtype=torch.float64, cache=False)
    assert any("shuffles" in n for n in shuffled.notes)
    v = torch.randn(shuffled.size, dtype=torch.float64)
    ops = [CurvatureOperator(p)(v) for p in (ordered, shuffled, shuffled)]
    assert torch.equal(ops[1], ops[2])  # the same objective on every matvec
    torch.testing.assert_close(ops[0], ops[1], rtol=0, atol=0)


class Augmented(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] + 0.1 * torch.randn_like(self.x[i]), self.y[i]


def test_sources_that_differ_between_passes_are_refused():
    x, y = blobs(n=30)
    with pytest.raises(InputError, match="two passes gave different first batches"):
        Problem(tanh_mlp(), DataLoader(Augmented(x, y), batch_size=8), dtype=torch.float64)
    weights = torch.ones(30)
    sampler = WeightedRandomSampler(weights, 30)
    with pytest.raises(InputError, match="WeightedRandomSampler draws a random order"):
        Problem(tanh_mlp(), DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler))
    with pytest.raises(InputError, match="one-shot iterator"):
        Problem(tanh_mlp(), ((x[i : i + 5], y[i : i + 5]) for i in range(0, 30, 5)))
    with pytest.raises(InputError, match="without 'labels'"):
        Problem(tanh_mlp(), [{"features": x}])


def test_a_factory_is_called_on_every_pass_and_max_samples_cuts_the_stream():
    x, y = blobs(n=40)
    calls = []

    def factory():
        calls.append(1)
        return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 40, 16)]

    p = Problem(tanh_mlp(), factory, dtype=torch.float64, cache=False, max_samples=30)
    ref = Problem(tanh_mlp(), x[:30], y[:30], batch_size=30, dtype=torch.float64)
    before = len(calls)
    assert p.n_samples == 30 and p.loss() == pytest.approx(ref.loss(), abs=1e-14)
    assert len(calls) == before + 1
    _, g = p.loss_and_grad(p.theta + 0)
    _, g_ref = ref.loss_and_grad(ref.theta + 0)
    torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-14)


def test_the_cache_budget_decides_what_stays_on_the_device(monkeypatch):
    import landscape.passes as passes_module

    x, y = blobs(n=64)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    assert Problem(tanh_mlp(), loader, dtype=torch.float64).cached
    monkeypatch.setattr(passes_module, "CPU_CACHE_BYTES", 3000)  # under the set's ~4.6 kB
    assert not Problem(tanh_mlp(), loader, dtype=torch.float64).cached
