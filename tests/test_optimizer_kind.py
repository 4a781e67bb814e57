"""Optimizer states that are not Adam's, SGD's or RMSprop's are named and left unread, never
read as one.

Each state comes from the real ``torch.optim`` class after real steps. Before, RMSprop with
momentum (a ``momentum_buffer`` beside its ``square_avg``) was read as momentum SGD (it is read
as RMSprop now: tests/test_rmsprop.py), and NAdam and RAdam (Adam's moments) as Adam: their next
step, preconditioned sharpness and stability threshold came from the wrong rule, without a word.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from torch import nn
from torch.nn import functional as F

from landscape.errors import InputError
from landscape.loading.optimizer import describe_optimizer, read_optimizer
from landscape.loading.optimizer_kind import kind_of
from landscape.loading.zoo import mlp

DIGITS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "data", "digits.npz"))
KW = {"in_dim": 64, "hidden": [8], "out_dim": 10, "activation": "tanh"}

# torch.optim class, its options, what kind_of names it, whether read_optimizer reads it
CASES = [
    ("SGD", {"momentum": 0.9}, "sgd", True),
    ("SGD", {"momentum": 0.9, "nesterov": True}, "sgd", True),
    ("Adam", {}, "adam", True),
    ("Adam", {"amsgrad": True}, "adam", True),
    ("AdamW", {}, "adam", True),
    ("NAdam", {}, "nadam", False),
    ("RAdam", {}, "radam", False),
    ("RAdam", {"decoupled_weight_decay": True, "weight_decay": 0.1}, "radam", False),
    ("Adamax", {}, "adamax", False),
    ("RMSprop", {"momentum": 0.9}, "rmsprop", True),
    ("RMSprop", {"centered": True}, "rmsprop", True),
    ("Adagrad", {}, "adagrad", False),
    ("Adadelta", {}, "adadelta", False),
    ("ASGD", {}, "asgd", False),
    ("Rprop", {}, "rprop", False),
]
if hasattr(torch.optim, "Adafactor"):  # torch >= 2.5
    CASES.append(("Adafactor", {}, "adafactor", False))


def _stepped(name: str, options: dict, steps: int = 2) -> tuple[nn.Module, dict]:
    torch.manual_seed(0)
    model = mlp(**KW)
    opt = getattr(torch.optim, name)(model.parameters(), lr=0.01, **options)
    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:20]), torch.from_numpy(data["y"][:20]).long()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt.state_dict()


@pytest.mark.parametrize("name, options, kind, read", CASES,
                         ids=[f"{c[0]}{'-' + ','.join(c[1]) if c[1] else ''}" for c in CASES])
def test_each_torch_optimizer_is_named_and_only_adam_and_sgd_are_read(name, options, kind, read):
    model, sd = _stepped(name, options)
    assert kind_of(sd) == kind
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    state = read_optimizer(sd, shapes)
    assert (state is not None) == read
    if read:
        assert state.kind == ("sgd" if name == "SGD" else name.lower())
    else:
        assert kind not in ("adam", "sgd", "rmsprop")
    described = describe_optimizer(sd)["kind"]
    assert described == (kind if name != "AdamW" else "adamw")


def test_no_step_taken_has_no_kind():
    _, sd = _stepped("Adam", {}, steps=0)
    assert kind_of(sd) is None and describe_optimizer(sd)["kind"] == "unknown"


def _checkpoint(tmp_path, name: str, options: dict) -> str:
    model, sd = _stepped(name, options)
    spec = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}
    path = str(tmp_path / f"{name}.pt")
    torch.save({"state_dict": model.state_dict(), "optimizer": sd, "landscape": spec}, path)
    return path


def test_track_threshold_refuses_another_optimizer_unless_told_sgd(tmp_path):
    """NAdam's edge is neither SGD's nor Adam's; with --optimizer sgd its groups' momentum (none
    here) gives 2/lr."""
    import landscape
    from landscape.analyses.track import threshold

    p = landscape.open(_checkpoint(tmp_path, "NAdam", {}), max_samples=20, device="cpu")
    with pytest.raises(InputError, match="NAdam's, whose edge of stability"):
        threshold(p, 0.01)
    assert threshold(p, 0.01, "sgd") == pytest.approx(2 / 0.01, rel=1e-12)
    with pytest.raises(InputError, match="holds no Adam state"):
        threshold(p, 0.01, "adam")


def test_cli_track_on_adamax_exits_2_and_writes_nothing(tmp_path):
    """Adamax stores exp_avg (and exp_inf): before, track divided the raw lambda_max by Adam's
    preconditioned threshold 38/lr, a ratio 19 times too small."""
    path = _checkpoint(tmp_path, "Adamax", {})
    out = tmp_path / "t.h5"
    args = ["track", path, "--lr", "0.01", "--metrics", "lambda_max,eos_ratio", "--max-samples",
            "50", "--device", "cpu", "--no-plot"]
    run = run_cli(*args, "-o", out)
    assert run.code == 2 and "Adamax's" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
    sgd = run_cli(*args, "--optimizer", "sgd", "-o", out)
    assert sgd.code == 0, sgd.stderr


def test_cli_sharpness_on_nadam_says_its_state_is_unused(tmp_path):
    """Before, NAdam's moments were read as Adam's: an 'edge of stability (Adam)' line and an
    'update (adam)' that is not NAdam's step."""
    run = run_cli("sharpness", _checkpoint(tmp_path, "NAdam", {}), "--max-samples", "50",
                  "--device", "cpu", "--no-plot", "-o", tmp_path / "s.h5")
    assert run.code == 0, run.stderr
    assert "NAdam's, and only Adam/AdamW, SGD and RMSprop states are read" in run.stderr
    assert "(Adam)" not in run.stdout and "update (adam)" not in run.stdout
