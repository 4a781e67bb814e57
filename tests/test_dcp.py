"""torch.distributed.checkpoint folders (dcp.save, as FSDP2 and torchtitan write them).

The known answers: the same model and optimizer saved with torch.save read to identical numbers,
and torch's own optimizer state looked up by parameter. A layout whose .metadata would import
anything but the layout's classes is refused without running it.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

import landscape
from landscape import steps
from landscape.errors import InputError
from landscape.loading import load_checkpoint
from landscape.loading.zoo import mlp

dcp = pytest.importorskip("torch.distributed.checkpoint")
state_dict_api = pytest.importorskip("torch.distributed.checkpoint.state_dict")

DIGITS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "data", "digits.npz"))
KW = {"in_dim": 64, "hidden": [8], "out_dim": 10, "activation": "tanh"}
SPEC = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}


def _trained():
    torch.manual_seed(0)
    model = mlp(**KW)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:50]), torch.from_numpy(data["y"][:50]).long()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, opt


def _save(state: dict, folder) -> str:
    with warnings.catch_warnings():  # "torch.distributed is ... uninitialized": one process
        warnings.simplefilter("ignore", UserWarning)
        dcp.save(state, checkpoint_id=str(folder))
    return str(folder)


def test_a_dcp_folder_reads_as_its_torch_save_twin(tmp_path):
    model, opt = _trained()
    msd, osd = state_dict_api.get_state_dict(model, opt)
    folder = _save({"model": msd, "optimizer": osd, "step": 3, "landscape": SPEC},
                   tmp_path / "ckpt")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 3,
                "landscape": SPEC}, tmp_path / "twin.pt")
    ck = load_checkpoint(folder)
    assert ck.format == "dcp self-describing" and ck.metadata["step"] == 3
    a = landscape.open(folder, max_samples=50, device="cpu")
    b = landscape.open(str(tmp_path / "twin.pt"), max_samples=50, device="cpu")
    assert torch.equal(a.theta, b.theta)
    assert a.loss_and_grad()[0] == b.loss_and_grad()[0]
    state = steps.optimizer_state(a)
    assert state.kind == "adamw" and state.order == "param_names"
    for name, param in model.named_parameters():
        assert torch.equal(state.exp_avg_sq[name], opt.state[param]["exp_avg_sq"]), name
    update_a, _ = steps.update(a)
    update_b, _ = steps.update(b)
    assert torch.equal(update_a.vector, update_b.vector)
    assert ck.sha256 == load_checkpoint(folder).sha256 != b.origin.checkpoint.sha256


def test_torchtitans_layout_keeps_the_weights_at_the_top(tmp_path):
    """torchtitan flattens the model's tensors beside optimizer, lr_scheduler, train_state."""
    model, opt = _trained()
    msd, osd = state_dict_api.get_state_dict(model, opt)
    folder = _save({**msd, "optimizer": osd, "step": 3}, tmp_path / "titan")
    p = landscape.open(folder, model="mlp", model_kwargs=KW, data=DIGITS, max_samples=50,
                       device="cpu")
    flat = torch.cat([t.detach().reshape(-1) for t in model.parameters()])
    assert torch.equal(p.theta, flat)
    assert steps.optimizer_state(p).kind == "adamw"


def test_a_layout_that_would_run_code_is_refused_unread(tmp_path):
    model, _ = _trained()
    folder = _save({"model": model.state_dict(), "landscape": SPEC}, tmp_path / "evil")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(os.path.join(folder, ".metadata"), "wb") as handle:
        pickle.dump(Payload(), handle)
    with pytest.raises(InputError, match="would import .*open.* pass `trust`"):
        load_checkpoint(folder)
    assert not marker.exists()
    run = run_cli("inspect", folder, "-o", str(tmp_path / "i.h5"))
    assert run.code == 2 and "--trust-checkpoint" in run.stderr and not marker.exists()
    with open(os.path.join(folder, ".metadata"), "wb") as handle:
        handle.write(os.urandom(200))
    with pytest.raises(InputError, match="not a checkpoint layout"):
        load_checkpoint(folder)
