"""A model called as nanoGPT's GPT is: forward(idx, targets=None) -> (logits, loss), and without
targets the last position's logits alone (an inference shortcut).

Before, causal-lm shifted a (B, 1, V) output to (B, 0, V) and the run stopped on "Expected
input batch_size (0) to match target batch_size (22)". Now the error names the cause and the
README's one-line subclass, which is checked here against the model's own training loss.
nanoGPT also saves the model's arguments as ``model_args``: they build the model unless
``--model-kwargs`` says otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from torch.nn import functional as F

import landscape
from landscape.errors import InputError

VOCAB, T = 30, 10

MODEL = '''
import torch
from torch import nn
from torch.nn import functional as F


class GPTLike(nn.Module):
    def __init__(self, n_embd=4):
        super().__init__()
        self.wte = nn.Embedding(30, n_embd)
        self.wpe = nn.Embedding(10, n_embd)
        self.ln = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, 30, bias=False)

    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        x = x + torch.tanh(self.ln(x))
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.reshape(-1, 30), targets.reshape(-1),
                                       ignore_index=-1)

'''

# the README's recipe, in a file of its own beside the model's (as beside nanoGPT's model.py)
RECIPE = '''
from nano_model import GPTLike


class AllPositions(GPTLike):
    def forward(self, idx):
        return super().forward(idx, idx)[0]


def make_all(n_embd=4, block_size=None):  # takes model_args as nanoGPT's GPTConfig does
    return AllPositions(n_embd)
'''


@pytest.fixture()
def run(tmp_path):
    (tmp_path / "nano_model.py").write_text(MODEL)
    (tmp_path / "gpt.py").write_text(RECIPE)
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpt_like", tmp_path / "nano_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.GPTLike(n_embd=8)  # not the default: the checkpoint's model_args say so
    ids = torch.randint(0, VOCAB, (12, T), generator=torch.Generator().manual_seed(0))
    torch.save({"model": model.state_dict(), "model_args": {"n_embd": 8}, "iter_num": 0},
               tmp_path / "ckpt.pt")
    torch.save(ids, tmp_path / "ids.pt")
    return tmp_path, model, ids


def test_last_position_only_is_named_with_the_fix(run):
    d, _, _ = run
    args = ["inspect", str(d / "ckpt.pt"), "--data", str(d / "ids.pt"), "--loss", "causal-lm",
            "--device", "cpu", "-o", str(d / "i.h5")]
    bad = run_cli(*args, "--model", f"{d / 'nano_model.py'}:GPTLike")
    assert bad.code == 2 and "Traceback" not in bad.stderr
    assert "gave the last position alone" in bad.stderr
    assert "super().forward(idx, idx)[0]" in bad.stderr
    good = run_cli(*args, "--model", f"{d / 'gpt.py'}:AllPositions")
    assert good.code == 0, good.stderr
    assert "built with the checkpoint's model_args" in good.stderr
    given = run_cli(*args, "--model", f"{d / 'gpt.py'}:AllPositions", "--model-kwargs",
                    '{"n_embd": 4}')
    assert given.code == 2 and "shape" in given.stderr  # --model-kwargs wins: 4 does not fit
    other = run_cli(*args, "--model", "mlp")  # another factory: the error says where n_embd came
    assert other.code == 2 and "the checkpoint's model_args; --model-kwargs '{}'" in other.stderr


def test_the_recipe_gives_the_models_own_training_loss(run):
    """A causal model's logits at t depend on tokens ≤ t alone, so its own loss on
    (ids[:, :-1], ids[:, 1:]) is causal-lm's whole-set mean on ids."""
    d, model, ids = run
    p = landscape.open(str(d / "ckpt.pt"), model=f"{d / 'gpt.py'}:AllPositions",
                       data=str(d / "ids.pt"), loss="causal-lm", device="cpu", batch_size=5)
    with torch.no_grad():
        _, own = model(ids[:, :-1], ids[:, 1:])
    assert p.loss() == pytest.approx(float(own), rel=1e-6)


def test_causal_lm_refuses_any_output_without_every_position():
    from landscape.losses import CausalLM

    y = torch.randint(0, VOCAB, (4, T))
    for shape in [(4, 1, VOCAB), (4, T - 1, VOCAB), (4 * T, VOCAB)]:
        with pytest.raises(InputError, match="at every position"):
            CausalLM()(torch.randn(shape), y)
    full = torch.randn(4, T, VOCAB)
    assert CausalLM()(full, y) == pytest.approx(
        float(F.cross_entropy(full[:, :-1].reshape(-1, VOCAB), y[:, 1:].reshape(-1))))


def test_train_bin_is_read_in_rows_of_the_checkpoints_block_size(run):
    """nanoGPT's prepare.py writes the ids as bare uint16; rows are block_size windows (the
    checkpoint's model_args), and the default loss on ids is the next token's."""
    d, model, _ = run
    stream = np.random.default_rng(0).integers(0, VOCAB, size=5 * T + 3).astype(np.uint16)
    stream.tofile(d / "train.bin")
    torch.save({"model": model.state_dict(), "model_args": {"n_embd": 8, "block_size": T}},
               d / "ckpt.pt")
    p = landscape.open(str(d / "ckpt.pt"), model=f"{d / 'gpt.py'}:make_all",
                       data=str(d / "train.bin"), device="cpu")
    rows = torch.from_numpy(stream[: 5 * T].astype(np.int64)).reshape(5, T)  # the tail left out
    with torch.no_grad():
        logits = model(rows, rows)[0]
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), rows[:, 1:].reshape(-1))
    assert p.loss_fn.name == "causal-lm" and p.n_samples == 5
    assert p.loss() == pytest.approx(float(expected), rel=1e-6)
    cut = run_cli("inspect", str(d / "ckpt.pt"), "--model", f"{d / 'gpt.py'}:make_all",
                  "--data", str(d / "train.bin"), "--max-samples", "2", "--device", "cpu",
                  "-o", str(d / "i.h5"))
    assert cut.code == 0 and "(2 samples)" in cut.stdout, cut.stderr


def test_token_stream_options_and_bad_files(tmp_path):
    from landscape.loading.token_stream import read_stream

    ids = np.arange(40, dtype=np.uint32) * 1000  # over uint16's range
    ids.tofile(tmp_path / "wide.bin")
    got = read_stream(str(tmp_path / "wide.bin"), {"block_size": 8, "dtype": "uint32"}, 3)
    assert torch.equal(got, torch.from_numpy(ids[:24].astype(np.int64)).reshape(3, 8))
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    for path, kwargs, match in [
        ("wide.bin", {}, "block_size"),
        ("wide.bin", {"block_size": 8, "dtype": "float32"}, "dtype 'float32'"),
        ("wide.bin", {"block_size": 1}, "integer >= 2"),
        ("wide.bin", {"block_size": 8, "stride": 4}, "not 'stride'"),
        ("wide.bin", {"block_size": 100, "dtype": "uint32"}, "fewer than one row"),
        ("odd.bin", {"block_size": 2}, "not a whole number of uint16"),
    ]:
        with pytest.raises(InputError, match=match):
            read_stream(str(tmp_path / path), kwargs)
    run = run_cli("inspect", "nothing.pt", "--data", str(tmp_path / "odd.bin"))
    assert run.code == 2
