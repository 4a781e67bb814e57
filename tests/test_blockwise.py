"""Blockwise spectra of a tiny GPT-2 against the exact float64 Hessian's diagonal blocks (built
by autograd double backward in test_hf): top eigenvalue per group to 1e-6, SLQ trace per group
within four standard errors of the exact block trace; JS distances; the ``blocks`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from cli_helpers import run_cli  # noqa: E402
from test_hf import _dense_hessian, _loss_fn, _reference, folders  # noqa: E402, F401

import landscape  # noqa: E402
from landscape.analyses.blockwise import assign, blockwise, js_distance, parse_groups  # noqa: E402
from landscape.errors import InputError  # noqa: E402

GPT2 = {
    "embeddings": ["transformer.wte.weight", "transformer.wpe.weight"],
    "qkv": ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias"],
    "attn_out": ["transformer.h.0.attn.c_proj.weight", "transformer.h.0.attn.c_proj.bias"],
    "mlp": [f"transformer.h.0.mlp.{m}.{w}" for m in ("c_fc", "c_proj") for w in ("weight", "bias")],
}
LLAMA = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
         "model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
         "model.layers.0.input_layernorm.weight", "model.norm.weight", "lm_head.weight"]


def test_the_preset_sorts_gpt2_and_llama_names():
    names = [n for ns in GPT2.values() for n in ns] + ["transformer.h.0.ln_1.weight",
                                                     "transformer.ln_f.bias"]
    groups, left = assign(names, parse_groups(["gpt2"]))
    assert not left and groups["norms"] == names[-2:]
    assert all(groups[g] == ns for g, ns in GPT2.items())
    groups, left = assign(LLAMA, parse_groups(None))
    assert not left and [len(groups[g]) for g in groups] == [1, 1, 1, 1, 2, 1]
    groups, left = assign(LLAMA, parse_groups(["attn=self_attn\\."]))
    assert list(groups) == ["attn"] and len(left) == 5
    with pytest.raises(InputError, match="NAME=REGEX"):
        parse_groups(["no-equals-sign"])


def test_the_preset_leaves_no_parameter_of_bert_or_distilbert_out():
    """BERT's attention.output.dense, intermediate/output.dense, LayerNorm (capital N) and
    pooler, DistilBERT's q/k/v_lin, out_lin, ffn and pre_classifier: before, 1,744 of a tiny
    BERT classifier's 3,507 parameters (its attention output, MLP, norms and pooler) were in
    no group, and the blocks printed were not the model's."""
    import transformers

    bert = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16, num_labels=3))
    distil = transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(
        vocab_size=40, dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=16,
        num_labels=3))
    layer = "bert.encoder.layer.0."
    for model, sizes in ((bert, [3, 6, 2, 4, 6, 4]), (distil, [2, 6, 2, 4, 6, 4])):
        groups, left = assign([n for n, _ in model.named_parameters()], parse_groups(None))
        assert not left and [len(groups[g]) for g in groups] == sizes
    groups, _ = assign([n for n, _ in bert.named_parameters()], parse_groups(None))
    assert groups["attn_out"] == [layer + "attention.output.dense.weight",
                                  layer + "attention.output.dense.bias"]
    assert layer + "output.dense.weight" in groups["mlp"]
    assert layer + "attention.output.LayerNorm.weight" in groups["norms"]
    assert "bert.pooler.dense.weight" in groups["head"]


def test_js_distance_is_zero_for_equal_and_one_for_disjoint_densities():
    p, q = np.array([1.0, 2.0, 0.0, 0.0]), np.array([0.0, 0.0, 3.0, 1.0])
    assert js_distance(p, 2 * p) == 0.0
    assert js_distance(p, q) == pytest.approx(1.0)
    assert 0 < js_distance(p, p + q) < 1


def test_block_spectra_match_the_exact_diagonal_blocks(folders):  # noqa: F811
    loss, theta = _loss_fn(_reference(folders / "lm"))
    H = _dense_hessian(loss, theta)
    p = landscape.open(folders / "lm", data=str(folders / "tokens.npz"), batch_size=4,
                       dtype="float64")
    r = blockwise(p, top_k=2, tol=1e-10, slq_runs=10, slq_steps=10, seed=3)
    assert r.names == ["embeddings", "qkv", "attn_out", "mlp", "norms"] and not r.unassigned
    offsets = np.cumsum([0, *p.numels])
    where = {n: np.arange(offsets[i], offsets[i + 1]) for i, n in enumerate(p.names)}
    groups, _ = assign(p.names, parse_groups(None))
    total = 0.0
    for i, name in enumerate(r.names):
        idx = torch.as_tensor(np.concatenate([where[n] for n in groups[name]]))
        block = H[idx][:, idx]
        assert r.n_params[i] == len(idx)
        exact = torch.linalg.eigvalsh(block).flip(0)[:2].numpy()
        np.testing.assert_allclose(r.eigenvalues[i], exact, rtol=1e-6, atol=1e-9)
        tr = float(block.trace())
        assert abs(r.trace[i] - tr) <= 4 * r.trace_stderr[i] + 1e-9, (name, r.trace[i], tr)
        total += tr
    assert total == pytest.approx(float(H.trace()), rel=1e-12)  # the blocks cover θ
    js = r.js_distance
    assert np.allclose(js, js.T) and np.allclose(np.diag(js), 0) and js.max() <= 1


def test_cli_blocks_writes_the_result_and_the_plot(folders, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    r = run_cli("blocks", folders / "lm", "--data", folders / "tokens.npz", "--group-by",
                "attn=attn\\.", "--group-by", "rest=.", "--slq-runs", "3", "--slq-steps", "10",
                "--json")
    assert r.code == 0, r.stderr
    assert r.json()["blockwise"]["names"] == ["attn", "rest"]
    assert (tmp_path / "lm_blocks.h5").exists() and (tmp_path / "lm_blocks.png").exists()
