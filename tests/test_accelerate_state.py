"""A folder written by accelerate's Accelerator.save_state, read as a checkpoint. The known
answer: the optimizer accelerate saved takes its real next step on the whole-set gradient, and
the step rebuilt from the folder equals it. Before, the folder was "a directory, not a file"."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

import landscape
from landscape import steps
from landscape.loading import load_checkpoint
from landscape.loading.zoo import mlp

accelerate = pytest.importorskip("accelerate")

DIGITS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "data", "digits.npz"))
KW = {"in_dim": 64, "hidden": [8], "out_dim": 10, "activation": "tanh"}


def test_save_state_folder_gives_weights_and_the_next_adamw_step(tmp_path):
    torch.manual_seed(0)
    acc = accelerate.Accelerator(cpu=True)
    model = mlp(**KW)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    model, opt = acc.prepare(model, opt)
    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:60]), torch.from_numpy(data["y"][:60]).long()

    def step() -> None:
        opt.zero_grad()
        acc.backward(torch.nn.functional.cross_entropy(model(x), y))
        opt.step()

    for _ in range(3):
        step()
    acc.save_state(str(tmp_path / "state"))
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    step()
    real = torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - before

    ck = load_checkpoint(str(tmp_path / "state"))
    assert ck.format == "accelerate" and ck.optimizer is not None
    p = landscape.open(str(tmp_path / "state"), model="mlp", model_kwargs=KW, data=DIGITS,
                       max_samples=60, device="cpu")
    assert torch.equal(p.theta, before)  # float32, as saved
    update, state = steps.update(p)
    wrong, _ = steps.update(p, optimizer="adam")  # read as Adam with L2 decay
    assert state.kind == "adamw" and update.source == "adam"
    # θ_next − θ in float32 is itself rounded to ~eps·|θ| (1e-7 here); a wrong rule (Adam's L2
    # for AdamW, another lr) is off by 1e-4 or more
    ulp = torch.finfo(torch.float32).eps * float(before.abs().max())
    assert float((update.vector - real).abs().max()) < 4 * ulp
    assert float((wrong.vector - real).abs().max()) > 100 * ulp  # the test can tell
    run = run_cli("inspect", str(tmp_path / "state"), "--model", "mlp", "--model-kwargs",
                  '{"in_dim": 64, "hidden": [8], "out_dim": 10, "activation": "tanh"}',
                  "--data", DIGITS, "--max-samples", "60", "-o", str(tmp_path / "i.h5"))
    assert run.code == 0 and "format accelerate" in run.stdout, run.stderr
