"""Hugging Face folders as checkpoints, against references built without landscape.

A tiny GPT-2 (random weights, ``save_pretrained``) on right-padded rows of different lengths.
References: the model loaded by ``transformers`` itself, the loss written out (mean over real
next-token targets of the whole set), the dense float64 Hessian from autograd double backward
(columns H e_j = ∇(∇L · e_j)), a few columns checked by central differences of the gradient.
Not ``torch.func.hessian``: jacrev-of-jacrev is wrong through ``layer_norm`` on torch 2.13.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from cli_helpers import run_cli  # noqa: E402

import landscape  # noqa: E402
from landscape.errors import InputError  # noqa: E402
from landscape.loading.checkpoints import load_checkpoint  # noqa: E402

VOCAB, T, N = 24, 7, 6
LENGTHS = [7, 5, 3, 7, 2, 6]  # real tokens per row; the rest is padding (id 0, mask 0)


def _config(**kw) -> transformers.GPT2Config:
    return transformers.GPT2Config(
        n_layer=1, n_embd=8, n_head=2, n_inner=16, vocab_size=VOCAB, n_positions=T,
        bos_token_id=1, eos_token_id=1, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, summary_first_dropout=0.0, **kw,
    )


def _tokens() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (N, T), generator=g)
    mask = (torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    lm = transformers.GPT2LMHeadModel(_config())
    with torch.no_grad():  # larger weights than the init's 0.02 so the curvature is not tiny
        for p in lm.parameters():
            p.add_(0.3 * torch.randn_like(p))
    lm.save_pretrained(root / "lm")
    lm.to(torch.bfloat16).save_pretrained(root / "lm-bf16")
    lm.to(torch.float32).save_pretrained(root / "lm-bf16-as-f32")  # its float32 copy
    torch.manual_seed(1)
    cls = transformers.GPT2ForSequenceClassification(_config(num_labels=3))
    cls.save_pretrained(root / "cls")
    tok = _tokens()
    np.savez(root / "tokens.npz", **{k: v.numpy() for k, v in tok.items()})
    labels = torch.tensor([0, 2, 1, 1, 0, 2])
    np.savez(root / "cls.npz", labels=labels.numpy(), **{k: v.numpy() for k, v in tok.items()})
    return root


def _reference(folder, cls=False):
    """The folder's model loaded by transformers itself, in float64, eager attention."""
    auto = transformers.AutoModelForSequenceClassification if cls else \
        transformers.AutoModelForCausalLM
    return auto.from_pretrained(folder, attn_implementation="eager").double().eval()


def _loss_fn(model, labels=None):
    """θ -> whole-set mean loss written out: next-token NLL over real targets, or CE per row."""
    tok = _tokens()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]

    def loss(theta):
        params = {n: t.view(s) for n, t, s in zip(names, theta.split(sizes), shapes)}
        z = torch.func.functional_call(model, params, (), tok).logits
        if labels is not None:
            return F.cross_entropy(z, labels)
        logp = torch.log_softmax(z[:, :-1], -1)
        nll = -logp.gather(-1, tok["input_ids"][:, 1:, None])[..., 0]
        real = tok["attention_mask"][:, 1:].bool()
        return nll[real].sum() / real.sum()

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return loss, theta


def _dense_hessian(loss, theta):
    leaf = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(leaf), leaf, create_graph=True)
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    (H,) = torch.autograd.grad(g, leaf, eye, is_grads_batched=True)
    return (H + H.T) / 2


def _grad(loss, theta):
    leaf = theta.clone().requires_grad_(True)
    return torch.autograd.grad(loss(leaf), leaf)[0]


def _check_columns(loss, theta, H, columns, h=1e-5):
    for j in columns:
        e = torch.zeros_like(theta)
        e[j] = h
        fd = (_grad(loss, theta + e) - _grad(loss, theta - e)) / (2 * h)
        assert torch.allclose(fd, H[:, j], atol=1e-6, rtol=1e-5), j


def test_causal_lm_loss_is_the_mean_over_real_next_tokens(folders):
    loss, theta = _loss_fn(_reference(folders / "lm"))
    expected = float(loss(theta))
    for bs in (2, 4, 6):
        p = landscape.open(folders / "lm", data=str(folders / "tokens.npz"), batch_size=bs,
                           dtype="float64")
        assert p.loss_name == "causal-lm" and p.n_targets == sum(LENGTHS) - N
        assert p.loss() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert any("tied" in n for n in p.notes) and any("eager" in n for n in p.notes)


def test_causal_lm_top3_equal_the_exact_hessians(folders):
    loss, theta = _loss_fn(_reference(folders / "lm"))
    H = _dense_hessian(loss, theta)
    _check_columns(loss, theta, H, [0, theta.numel() // 2, theta.numel() - 1])
    exact = torch.linalg.eigvalsh(H).flip(0)[:3].numpy()
    p = landscape.open(folders / "lm", data=str(folders / "tokens.npz"), batch_size=4,
                       dtype="float64")
    assert p.size == theta.numel()
    top = landscape.spectrum(p, top_k=3, tol=1e-10, density=False).whole.eigenvalues
    np.testing.assert_allclose(top, exact, rtol=1e-5, atol=1e-5)


def test_sequence_classification_top_eigenvalue(folders):
    labels = torch.tensor([0, 2, 1, 1, 0, 2])
    loss, theta = _loss_fn(_reference(folders / "cls", cls=True), labels)
    H = _dense_hessian(loss, theta)
    _check_columns(loss, theta, H, [1, theta.numel() - 2])
    p = landscape.open(folders / "cls", data=str(folders / "cls.npz"), batch_size=4,
                       dtype="float64")
    assert p.loss_name == "cross-entropy"
    assert p.loss() == pytest.approx(float(loss(theta)), rel=1e-12)
    top = landscape.spectrum(p, top_k=1, tol=1e-10, density=False).whole.eigenvalues
    assert top[0] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-5)


def test_a_bf16_folder_is_analysed_in_float32(folders):
    ckpt = load_checkpoint(str(folders / "lm-bf16"))
    assert ckpt.format == "huggingface" and ckpt.metadata["stored_dtype"] == "bfloat16"
    tops = []
    for name in ("lm-bf16-as-f32", "lm-bf16"):
        p = landscape.open(folders / name, data=str(folders / "tokens.npz"))
        assert p.theta.dtype == torch.float32
        tops.append(landscape.spectrum(p, top_k=1, tol=1e-8, density=False).whole.lambda_max)
    assert any("bfloat16" in n for n in p.notes)
    assert tops[1] == pytest.approx(tops[0], rel=1e-5)  # float32 analysis, not bf16's 1e-2


def test_an_explicit_loss_beats_the_head_and_ids_files_work(folders, tmp_path):
    np.save(tmp_path / "ids.npy", _tokens()["input_ids"][:, :3].numpy() + 1)
    p = landscape.open(folders / "lm", data=str(tmp_path / "ids.npy"), loss="cross-entropy")
    assert p.loss_name == "cross-entropy" and p.n_targets == N * 3
    p = landscape.open(folders / "lm", data=str(tmp_path / "ids.npy"),
                       model_kwargs={"layer_norm_epsilon": 0.5})  # config overrides
    assert p.model.config.layer_norm_epsilon == 0.5 and p.loss_name == "causal-lm"


def test_folders_without_weights_or_with_their_own_code_are_refused(folders, tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(InputError, match="no weights"):
        load_checkpoint(str(tmp_path))
    own = tmp_path / "own"
    own.mkdir()
    (own / "config.json").write_text(
        '{"model_type": "mine", "architectures": ["MineForCausalLM"], '
        '"auto_map": {"AutoConfig": "configuration_mine.MineConfig", '
        '"AutoModelForCausalLM": "modeling_mine.MineForCausalLM"}}'
    )
    torch.save({"w": torch.zeros(2)}, own / "pytorch_model.bin")
    with pytest.raises(InputError, match="trust-checkpoint"):
        landscape.open(own, data=str(folders / "tokens.npz"))


def test_cli_spectrum_and_inspect_on_a_folder(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli("spectrum", folders / "lm", "--data", folders / "tokens.npz", "--top-k", "2",
                "--slq-runs", "2", "--slq-steps", "8", "--batch-size", "4", "--json")
    assert r.code == 0, r.stderr
    assert len(r.json()["spectrum"]["eigenvalues"]) == 2 and "runs eager" in r.stderr
    r = run_cli("inspect", folders / "lm-bf16", "--data", folders / "tokens.npz")
    assert r.code == 0, r.stderr
    assert "GPT2LMHeadModel" in r.stdout and "bfloat16" in r.stdout
    assert "transformer.h.0" in r.stdout


def test_without_transformers_the_cli_says_what_to_install(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises
    r = run_cli("spectrum", folders / "lm", "--data", folders / "tokens.npz")
    assert r.code == 2
    assert 'pip install "landscape[hf]"' in r.stderr


def test_model_dtype_bf16_runs_the_model_under_autocast(folders, tmp_path, monkeypatch):
    data = str(folders / "tokens.npz")
    exact = landscape.open(folders / "lm", data=data)
    mixed = landscape.open(folders / "lm", data=data, model_dtype="bf16")
    assert mixed.theta.dtype == torch.float32 and any("about 1e-2" in n for n in mixed.notes)
    assert mixed.loss() == pytest.approx(exact.loss(), rel=1e-2)
    assert mixed.loss() != exact.loss()  # the matrix products did run in bf16
    tops = [landscape.spectrum(p, top_k=1, density=False, tol=1e-4).whole.lambda_max
            for p in (exact, mixed)]
    assert tops[1] == pytest.approx(tops[0], rel=5e-2)  # 1.5e-2 here
    monkeypatch.chdir(tmp_path)
    r = run_cli("spectrum", folders / "lm", "--data", data, "--model-dtype", "bf16", "--top-k",
                "1", "--no-density", "--json")
    assert r.code == 0, r.stderr
    assert "1e-2" in landscape.read_result("lm_spectrum.h5")["model_dtype"]


def test_sharded_bin_and_base_model_folders_load_the_same_weights(folders, tmp_path):
    import json
    import shutil

    lm = transformers.GPT2LMHeadModel.from_pretrained(folders / "lm")
    lm.save_pretrained(tmp_path / "sharded", max_shard_size="2KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    old = tmp_path / "old"  # a base-model .bin with GPT-2's old causal-mask buffers beside
    old.mkdir()
    shutil.copy(folders / "lm" / "config.json", old / "config.json")
    sd = {k.removeprefix("transformer."): v for k, v in lm.state_dict().items()
          if k != "lm_head.weight"}
    sd["h.0.attn.bias"] = torch.ones(1, 1, T, T)
    torch.save(sd, old / "pytorch_model.bin")
    ref = landscape.open(folders / "lm", data=str(folders / "tokens.npz"))
    for folder in (tmp_path / "sharded", old):
        p = landscape.open(folder, data=str(folders / "tokens.npz"))
        assert torch.equal(p.theta, ref.theta) and p.loss() == ref.loss()
    assert any("marks as unused" in n for n in p.notes)
    # the same folder as the second model of a comparison (lmc, sharpness A B) reads alike
    for folder in (tmp_path / "sharded", old):
        state = landscape.weights_like(ref, folder)
        assert all(torch.equal(state[k], v) for k, v in ref.model.state_dict().items())
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1


def test_lmc_between_two_folders(folders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli("lmc", folders / "lm", folders / "lm-bf16-as-f32", "--data",
                folders / "tokens.npz", "--json", "--no-plot")
    assert r.code == 0, r.stderr
    assert "barrier_loss" in r.json()["lmc"]


def test_a_base_model_without_a_head_says_it_has_no_default_loss(folders, tmp_path):
    transformers.GPT2Model(_config()).save_pretrained(tmp_path / "base")
    np.save(tmp_path / "ids.npy", _tokens()["input_ids"].numpy() % 8)  # 8 hidden units
    p = landscape.open(tmp_path / "base", data=str(tmp_path / "ids.npy"), loss="cross-entropy")
    assert any("no default loss for the head GPT2Model" in n for n in p.notes)


def test_a_datasets_folder_of_ragged_rows_gives_the_padded_files_loss(folders, tmp_path):
    datasets = pytest.importorskip("datasets")
    tok = _tokens()
    rows = [r[:n].tolist() for r, n in zip(tok["input_ids"], LENGTHS)]
    ds = datasets.Dataset.from_dict({"input_ids": rows})
    datasets.DatasetDict({"train": ds, "test": ds.select(range(2))}).save_to_disk(tmp_path / "d")
    ref = landscape.open(folders / "lm", data=str(folders / "tokens.npz"), batch_size=4)
    p = landscape.open(folders / "lm", data=str(tmp_path / "d"), data_kwargs={"split": "train"},
                       batch_size=4)
    assert p.n_targets == ref.n_targets and p.loss() == pytest.approx(ref.loss(), rel=1e-6)
    with pytest.raises(InputError, match="choose one"):
        landscape.open(folders / "lm", data=str(tmp_path / "d"))


def test_a_datasets_folder_without_datasets_says_what_to_install(folders, tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "dataset_dict.json").write_text('{"splits": ["train"]}')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets raises
    r = run_cli("inspect", folders / "lm", "--data", tmp_path / "d")
    assert r.code == 2 and "pip install datasets" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


MINE_CONFIG = """
from transformers import PretrainedConfig


class MineConfig(PretrainedConfig):
    model_type = "mine"

    def __init__(self, width=4, vocab_size=VOCAB, **kw):
        self.width, self.vocab_size = width, vocab_size
        super().__init__(**kw)
""".replace("VOCAB", str(VOCAB))
MINE_MODEL = """
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_mine import MineConfig


class MineForCausalLM(PreTrainedModel):
    config_class = MineConfig

    def __init__(self, config):
        super().__init__(config)
        self.emb = torch.nn.Embedding(config.vocab_size, config.width)
        self.out = torch.nn.Linear(config.width, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kw):
        return CausalLMOutput(logits=self.out(torch.tanh(self.emb(input_ids))))
"""


def test_a_folder_with_its_own_code_loads_only_when_trusted(folders, tmp_path, monkeypatch):
    import json

    from safetensors.torch import save_file

    monkeypatch.setattr(transformers.dynamic_module_utils, "HF_MODULES_CACHE",
                        str(tmp_path / "modules"))  # where transformers copies the code
    own = tmp_path / "own"
    own.mkdir()
    (own / "configuration_mine.py").write_text(MINE_CONFIG)
    (own / "modeling_mine.py").write_text(MINE_MODEL)
    (own / "config.json").write_text(json.dumps({
        "model_type": "mine", "architectures": ["MineForCausalLM"], "width": 4,
        "auto_map": {"AutoConfig": "configuration_mine.MineConfig",
                     "AutoModelForCausalLM": "modeling_mine.MineForCausalLM"}}))
    g = torch.Generator().manual_seed(0)
    save_file({"emb.weight": torch.randn(VOCAB, 4, generator=g),
               "out.weight": torch.randn(VOCAB, 4, generator=g),
               "out.bias": torch.zeros(VOCAB)}, own / "model.safetensors")
    data = str(folders / "tokens.npz")
    with pytest.raises(InputError, match="Python code in the folder.*trust-checkpoint"):
        landscape.open(own, data=data)
    p = landscape.open(own, data=data, trust=True)
    assert type(p.model).__name__ == "MineForCausalLM" and p.loss_name == "causal-lm"
    assert p.size == 2 * VOCAB * 4 + VOCAB and np.isfinite(p.loss())


def test_a_classification_set_names_its_labels_label(folders, tmp_path):
    """datasets' classification sets (GLUE, IMDb) call the column ``label``, which the
    Trainer's collator renames to ``labels``. Before, it was ignored: the labels defaulted to
    the ids and the run stopped on "Expected input batch_size (2) to match target batch_size
    (16)". The known answer: the loss with the same classes under ``labels``."""
    datasets = pytest.importorskip("datasets")
    tok = _tokens()
    labels = [0, 2, 1, 1, 0, 2]
    rows = {k: v.tolist() for k, v in tok.items()}
    datasets.Dataset.from_dict({**rows, "label": labels}).save_to_disk(tmp_path / "label")
    np.savez(tmp_path / "label.npz", label=np.array(labels),
             **{k: v.numpy() for k, v in tok.items()})
    want = landscape.open(folders / "cls", data=str(folders / "cls.npz"), dtype="float64").loss()
    for data in ("label", "label.npz"):
        p = landscape.open(folders / "cls", data=str(tmp_path / data), dtype="float64")
        assert p.loss() == pytest.approx(want, rel=1e-12), data
    datasets.Dataset.from_dict(rows).save_to_disk(tmp_path / "none")
    with pytest.raises(InputError, match="a classification head needs a labels .or label. col"):
        landscape.open(folders / "cls", data=str(tmp_path / "none"))
