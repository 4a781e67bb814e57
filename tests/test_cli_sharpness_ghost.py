"""`landscape sharpness` and `landscape ghost` end to end on the demo checkpoints."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
B = os.path.join(ROOT, "data", "demo_b.pt")
FAST = ["--max-samples", "120", "--seed", "1"]


def test_sharpness_with_next(tmp_path):
    out, png = tmp_path / "s.h5", tmp_path / "s.png"
    r = run_cli(
        "sharpness",
        A,
        B,
        *FAST,
        "--top-k",
        "1",
        "--random",
        "2",
        "--max-steps",
        "12",
        "--tol",
        "1e-3",
        "--lr",
        "0.01",
        "-o",
        out,
        "--plot",
        png,
        "--json",
    )
    assert r.code == 0, r.stderr
    s = r.json()["sharpness"]
    assert s["lambda_max"] > 0
    assert set(s["directional"]) >= {"gradient", "update", "top_eigenvector", "random"}
    assert s["eos_ratio"] == pytest.approx(0.01 * s["lambda_max"] / 2, rel=1e-9)
    assert s["preconditioned"]["threshold"] == pytest.approx(38 / 0.01, rel=1e-9)
    assert s["update_source"] == "next"
    assert r.json()["matvecs"] > 0
    with h5py.File(out) as f:
        assert "sharpness/directional/update" in f and "sharpness/quadratic/true_loss" in f
        assert f["sharpness/lambda_max"].attrs["description"]
    assert png.stat().st_size > 10_000


def test_ghost_with_next_uses_the_step_length(tmp_path):
    out, png = tmp_path / "g.h5", tmp_path / "g.png"
    r = run_cli("ghost", A, B, *FAST, "--quantile", "0.9", "-o", out, "--plot", png, "--json")
    assert r.code == 0, r.stderr
    g = r.json()["ghost"]
    a = torch.load(A, weights_only=True)["state_dict"]
    b = torch.load(B, weights_only=True)["state_dict"]
    tau = math.sqrt(sum(float(((b[k] - a[k]).double() ** 2).sum()) for k in a))
    assert g["tau"] == pytest.approx(tau, rel=1e-5)
    assert g["r"] == pytest.approx(g["tau"] / g["rho_a"], rel=1e-12)
    assert g["rho_quantile"] >= g["rho_a"]
    with h5py.File(out) as f:
        spread = f["ghost/spread"][()]
        assert len(spread) == 120 and f["ghost"].attrs["direction"] == "update (next)"
        assert f["ghost/rho_a"][()] == pytest.approx(math.pi / np.max(spread), rel=1e-9)
    assert png.stat().st_size > 10_000


def test_ghost_gradient_with_lr_and_no_plot(tmp_path):
    r = run_cli(
        "ghost",
        A,
        *FAST,
        "--direction",
        "gradient",
        "--lr",
        "2",
        "--no-plot",
        "-o",
        tmp_path / "g.h5",
    )
    assert r.code == 0, r.stderr
    assert "rho_a" in r.stdout and "r = tau/rho_a" in r.stdout
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["sharpness", A, "--lr", "-1"], "--lr"),
        (["sharpness", A, "--momentum", "1.5"], "--momentum"),
        (["ghost", A, "--quantile", "2"], "--quantile"),
        (["ghost", A, "--direction", "sideways"], "sideways"),
        (["ghost", A, os.path.join(ROOT, "data", "missing.pt")], "missing.pt"),
    ],
)
def test_bad_values_exit_2(tmp_path, args, message):
    r = run_cli(*args, *FAST, "-o", tmp_path / "x.h5", "--no-plot")
    assert r.code == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_bad_direction_file_exits_2(tmp_path):
    np.save(tmp_path / "d.npy", np.ones(7))
    r = run_cli(
        "sharpness",
        A,
        *FAST,
        "--direction-file",
        tmp_path / "d.npy",
        "--no-plot",
        "-o",
        tmp_path / "x.h5",
    )
    assert r.code == 2 and "entries" in r.stderr


def _adamw_checkpoint(path: str) -> float:
    """An AdamW checkpoint whose param groups, as torch < 2.6 wrote them, do not say "AdamW";
    returns the length of the step AdamW really takes next."""
    from landscape.loading.data import load_data
    from landscape.loading.zoo import mlp

    kwargs = {"in_dim": 16, "hidden": [8], "out_dim": 4}
    torch.manual_seed(0)
    model = mlp(**kwargs)
    data = load_data("gmm")
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        opt.step()

    for _ in range(3):
        step()
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        group.pop("decoupled_weight_decay", None)
    spec = {"model": "mlp", "model_kwargs": kwargs, "data": "gmm", "loss": "cross-entropy"}
    torch.save({"state_dict": model.state_dict(), "optimizer": sd, "landscape": spec}, path)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    step()
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return float((after - before).norm())


def test_optimizer_flag_says_adamw_where_the_state_does_not(tmp_path):
    ck = str(tmp_path / "adamw.pt")
    true_tau = _adamw_checkpoint(ck)
    r = run_cli(
        "ghost", ck, "--optimizer", "adamw", "--json", "--no-plot", "-o", str(tmp_path / "w.h5")
    )
    assert r.code == 0, r.stderr
    assert r.json()["ghost"]["tau"] == pytest.approx(true_tau, rel=1e-4)
    guessed = run_cli("ghost", ck, "--json", "--no-plot", "-o", str(tmp_path / "a.h5"))
    assert guessed.code == 0 and "--optimizer adamw" in guessed.stderr
    assert abs(guessed.json()["ghost"]["tau"] - true_tau) > 1e-3 * true_tau


@pytest.mark.parametrize("no_adam", [False, True])
def test_sharpness_prints_lambda_against_the_threshold_with_its_beta_and_lr(tmp_path, no_adam):
    args = ["sharpness", A, *FAST, "--top-k", "1", "--random", "0", "--max-steps", "12",
            "--tol", "1e-3", "--lr", "0.01", "--momentum", "0.5", "--no-plot",
            "-o", tmp_path / "s.h5"]
    r = run_cli(*args, *(["--no-adam"] if no_adam else []))
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    gd = next(line for line in lines if line.startswith("edge of stability (gradient descent)"))
    with h5py.File(tmp_path / "s.h5") as f:
        lam, ratio = float(f["sharpness/lambda_max"][()]), float(f["sharpness/eos_ratio"][()])
    assert f"lambda_max {lam:.4g} vs threshold (2+2β)/lr = 300 (β = 0.5" in gd
    assert "lr = 0.01): ratio" in gd and f"ratio {ratio:.4g}" in gd
    assert ratio == pytest.approx(lam / 300, rel=1e-9)
    note = lines[lines.index(gd) + 1]
    assert "adam state: this plain-GD threshold is not Adam's" in note
    pre = [line for line in lines if line.startswith("edge of stability (Adam)")]
    if no_adam:
        assert "drop --no-adam" in note and not pre
    else:
        assert "see the preconditioned line below" in note
        assert "(β1 = 0.9, lr = 0.01): ratio" in pre[0] and "= 3800" in pre[0]
