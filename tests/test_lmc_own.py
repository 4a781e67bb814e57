"""``lmc`` reports each endpoint's own loss and accuracy as saved beside the reset endpoints.

Known answer: ``landscape inspect`` on each checkpoint. The CNN is trained a few steps in the test
with BatchNorm's default momentum, so its saved running statistics are EMAs over earlier weights
and the ``--bn reset`` endpoints (statistics re-estimated at the saved weights) differ from them.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from torch import nn

MODEL = """
import torch
from torch import nn


def make():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    )
"""


def _checkpoints(tmp_path) -> None:  # noqa: ANN001
    """a.pt and b.pt: the CNN of model.py from two seeds after 4 and 6 Adam steps on data.npz."""
    (tmp_path / "model.py").write_text(MODEL)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (64,), generator=g)
    x = torch.randn(64, 1, 6, 6, generator=g) + y.view(-1, 1, 1, 1).float()
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=y.numpy())
    namespace: dict = {}
    exec(MODEL, namespace)  # noqa: S102 - the test's own model source
    for name, seed, steps in (("a.pt", 0, 4), ("b.pt", 1, 6)):
        torch.manual_seed(seed)
        model = namespace["make"]()
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        model.train()  # BatchNorm momentum 0.1: the running statistics become EMAs
        for i in range(steps):
            xb, yb = x[16 * (i % 4) : 16 * (i % 4 + 1)], y[16 * (i % 4) : 16 * (i % 4 + 1)]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
        spec = {"model": "model.py:make", "data": "data.npz"}
        torch.save({"state_dict": model.state_dict(), "landscape": spec}, tmp_path / name)


def test_own_endpoints_equal_inspect_and_differ_from_reset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _checkpoints(tmp_path)
    own = {}
    for name in ("a.pt", "b.pt"):
        run = run_cli("inspect", name, "--json", "-o", f"{name}.h5")
        assert run.code == 0, run.stderr
        own[name] = run.json()["inspect"]
    run = run_cli("lmc", "a.pt", "b.pt", "--points", "3", "--bn-batches", "2", "-o", "r.h5",
                  "--plot", "r.png")  # fmt: skip
    assert run.code == 0, run.stderr
    with h5py.File("r.h5") as f:
        g = f["lmc"]
        assert g.attrs["bn"] == "reset"
        loss, acc = g["loss"][()], g["accuracy"][()]
        own_loss, own_acc = g["own_loss"][()], g["own_accuracy"][()]
        assert "description" in g["own_loss"].attrs and "description" in g["own_accuracy"].attrs
    for k, name in enumerate(("a.pt", "b.pt")):  # the known answer: inspect's own numbers
        assert own_loss[k] == pytest.approx(own[name]["loss"], rel=1e-6)
        assert own_acc[k] == pytest.approx(own[name]["accuracy"], abs=1e-12)
    reset = loss[[0, -1]]
    print(f"own loss {own_loss}, reset endpoints {reset}; own accuracy {own_acc}, reset "
          f"{acc[[0, -1]]}")  # fmt: skip
    assert np.all(np.abs(reset - own_loss) > 1e-3 * own_loss)  # EMAs: reset is not "own"
    assert "as saved (own buffers): loss A" in run.stdout
    assert "re-estimated BatchNorm statistics" in run.stdout
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_without_batchnorm_own_equals_the_endpoints(tmp_path):
    """``interpolate`` with every parameter moving: α = 0 and 1 are the checkpoints themselves."""
    from test_align import blobs, mlp

    from landscape.analyses.lmc import lmc
    from landscape.problem import Problem

    x, y = blobs(40, (6,))
    p = Problem(mlp(0).double(), x.double(), y, batch_size=16, dtype=torch.float64)
    same = Problem(mlp(0).double(), x.double(), y, batch_size=8, dtype=torch.float64)
    states = [mlp(1).double().state_dict(), mlp(2).double().state_dict()]
    r = lmc(p, states, eval_problem=same, points=3)
    np.testing.assert_allclose(r.own["eval_own_loss"], r.own["own_loss"], rtol=1e-12)
    assert r.own["own_loss"].shape == (3,)  # one per checkpoint, in argument order
    np.testing.assert_allclose(r.own["own_loss"][:2], r.curves["loss"][[0, -1]], rtol=1e-12)
    np.testing.assert_allclose(r.own["own_accuracy"][:2], r.curves["accuracy"][[0, -1]])
    assert r.own["own_loss"][2] != r.own["own_loss"][1]
