"""Train two small MLPs on scikit-learn's digits and write self-describing checkpoints.

Writes, next to each other under ``data/`` (beside ``tiny_model.py``, the worked example of a
user's own model file, whose ``make`` loads these weights):
  digits.npz              standardised features ``x`` (float32, 1797 x 64) and labels ``y``
  demo_a.pt, demo_b.pt    ``{"state_dict", "optimizer", "landscape"}`` from seeds 0 and 1

Run from the repository root: ``python examples/train_demo.py`` (CPU, a few seconds). Then e.g.
``landscape lmc data/demo_a.pt data/demo_b.pt``.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
from sklearn.datasets import load_digits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from landscape.loading.zoo import mlp  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
MODEL_KWARGS = {"in_dim": 64, "hidden": [32], "out_dim": 10, "activation": "tanh"}
STEPS, LR = 300, 1e-2

def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised digits features (float32) and labels (int64)."""
    bunch = load_digits()
    x = bunch.data.astype(np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(bunch.target.astype(np.int64))


def train(seed: int, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, float]:
    """Full-batch Adam from ``seed``; returns the checkpoint dict and the train accuracy."""
    torch.manual_seed(seed)
    model = mlp(**MODEL_KWARGS)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    checkpoint = {
        "state_dict": model.state_dict(),
        "optimizer": opt.state_dict(),
        "landscape": {"model": "mlp", "model_kwargs": MODEL_KWARGS, "data": "digits.npz",
                      "loss": "cross-entropy"},
    }
    return checkpoint, accuracy


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    x, y = digits()
    np.savez_compressed(os.path.join(OUT, "digits.npz"), x=x.numpy(), y=y.numpy())
    for name, seed in (("demo_a", 0), ("demo_b", 1)):
        checkpoint, accuracy = train(seed, x, y)
        torch.save(checkpoint, os.path.join(OUT, f"{name}.pt"))
        print(f"{name}.pt (seed {seed}): train accuracy {accuracy:.4f}")
    print(f"wrote digits.npz, demo_a.pt, demo_b.pt to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
