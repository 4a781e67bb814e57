"""``landscape lmc`` end to end on the demo checkpoints (cut to a few samples to stay fast)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import torch
from cli_helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
B = os.path.join(ROOT, "data", "demo_b.pt")
FAST = ["--max-samples", "150", "--points", "5", "--device", "cpu"]


def test_demo_pair_json_file_and_plot(tmp_path):
    out, png = tmp_path / "r.h5", tmp_path / "r.png"
    run = run_cli("lmc", A, B, *FAST, "--json", "-o", out, "--plot", png)
    assert run.code == 0, run.stderr
    lmc = run.json()["lmc"]
    assert len(lmc["alpha"]) == 5 and lmc["alpha"][0] == 0 and lmc["alpha"][-1] == 1
    assert lmc["barrier_loss"] > 0.05  # two seeds, unaligned: a clear barrier
    assert lmc["barrier_loss"] <= lmc["barrier_loss_mean"] + abs(lmc["loss"][0] - lmc["loss"][-1])
    assert png.exists() and png.stat().st_size > 10_000
    with h5py.File(out) as f:
        assert f.attrs["command"] == "lmc" and f.attrs["matvecs"] == 0
        for name in ("alpha", "loss", "accuracy", "barrier_loss", "barrier_accuracy",
                     "barrier_loss_mean", "barrier_accuracy_mean"):  # fmt: skip
            assert name in f["lmc"], name
        assert "description" in f["lmc/barrier_loss"].attrs


def test_eval_data_equal_to_the_data_gives_equal_curves(tmp_path):
    digits = os.path.join(ROOT, "data", "digits.npz")
    run = run_cli("lmc", A, B, *FAST, "--eval-data", digits, "--json", "-o", tmp_path / "r.h5",
                  "--no-plot")  # fmt: skip
    assert run.code == 0, run.stderr
    lmc = run.json()["lmc"]
    assert np.allclose(lmc["eval_loss"], lmc["loss"]) and "eval_barrier_accuracy_mean" in lmc


def test_three_checkpoints_give_a_3x3_matrix_and_heat_map(tmp_path):
    png = tmp_path / "r.png"
    run = run_cli("lmc", A, B, A, *FAST, "--json", "-o", tmp_path / "r.h5", "--plot", png)
    assert run.code == 0, run.stderr
    m = np.array(run.json()["lmc"]["pairwise"]["barrier_loss"])
    assert m.shape == (3, 3) and np.allclose(m, m.T) and abs(m[0, 2]) < 1e-9
    assert png.exists()


def test_align_weights_and_save_aligned(tmp_path):
    saved = tmp_path / "b_aligned.pt"
    args = [*FAST, "--json", "--no-plot", "-o", tmp_path / "r.h5", "--align", "weights"]
    run = run_cli("lmc", A, B, *args, "--save-aligned", saved, "--layerwise")
    assert run.code == 0, run.stderr
    lmc = run.json()["lmc"]
    assert lmc["alignment"]["distance_after"] < lmc["alignment"]["distance_before"]
    assert set(lmc["layers"]) == {"layers.0", "layers.2"}
    ckpt = torch.load(saved, weights_only=True)
    assert ckpt["landscape"]["model"] == "mlp" and "layers.0.weight" in ckpt["state_dict"]
    again = run_cli("lmc", A, saved, *FAST, "--json", "--no-plot", "-o", tmp_path / "s.h5")
    assert again.code == 0, again.stderr  # the saved B interpolated without re-aligning
    assert again.json()["lmc"]["barrier_loss"] == lmc["barrier_loss"]


def test_different_architecture_exits_2_naming_the_parameter(tmp_path):
    other = tmp_path / "wide.pt"
    torch.manual_seed(0)
    state = {"layers.0.weight": torch.randn(16, 64), "layers.0.bias": torch.zeros(16),
             "layers.2.weight": torch.randn(10, 16), "layers.2.bias": torch.zeros(10)}  # fmt: skip
    torch.save({"state_dict": state}, other)
    run = run_cli("lmc", A, other, *FAST, "--no-plot", "-o", tmp_path / "r.h5")
    assert run.code == 2
    assert "layers.0.weight" in run.stderr and "Traceback" not in run.stderr


def test_one_checkpoint_is_a_usage_error(tmp_path):
    run = run_cli("lmc", A, "--no-plot", "-o", tmp_path / "r.h5")
    assert run.code == 2 and "at least two" in run.stderr
