"""Surface points per second: one at a time against vectorised blocks (``--chunk``).

    python benchmarks/surface_speed.py [--device cpu|cuda] [--grid 11] [--repeats 3]

Workloads: the demo MLP on digits (1797 samples, 2410 parameters; and on its first 150) and a
small CNN with
BatchNorm (held at θ's statistics, ``bn=keep``) on random 3x16x16 images. Every variant fills the
same grid from scratch; the table reports the median over repeats and the max abs difference of
the loss to one-at-a-time (the vectorised sums are the same sums, in another order).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from landscape.analyses import surface_directions as sd  # noqa: E402
from landscape.analyses.surface import empty, surface  # noqa: E402
from landscape.loading.zoo import mlp  # noqa: E402
from landscape.problem import Problem  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def demo_mlp(device: str, n: int | None = None) -> Problem:
    ckpt = torch.load(os.path.join(ROOT, "data", "demo_a.pt"), weights_only=True)
    model = mlp(**ckpt["landscape"]["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    d = np.load(os.path.join(ROOT, "data", "digits.npz"))
    x, y = torch.tensor(d["x"])[:n], torch.tensor(d["y"])[:n]
    return Problem(model, x, y, batch_size=2048, device=device)


def small_cnn(device: str) -> Problem:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip
    x, y = torch.randn(256, 3, 16, 16), torch.randint(0, 10, (256,))
    return Problem(model, x, y, batch_size=256, device=device)


def timed(problem: Problem, grid: int, chunk: int, repeats: int) -> tuple[float, np.ndarray]:
    dirs = sd.random(problem, 2, seed=0)
    times, loss = [], None
    for _ in range(repeats + 1):  # the first is a warm-up
        r = empty(dirs, (grid, grid), ((-1, 1), (-1, 1)), True)
        if problem.device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        surface(problem, r, chunk=chunk)
        if problem.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        loss = r.loss
    return statistics.median(times[1:]), loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--grid", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunks", default="1,8,64")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    points = args.grid**2
    print(f"device {args.device}, {points} points, torch {torch.__version__}, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"{'workload':<10}{'chunk':>6}{'seconds':>10}{'points/s':>10}{'speed-up':>10}"
          f"{'max |Δloss|':>13}")  # fmt: skip
    builds = (("mlp-150", lambda dev: demo_mlp(dev, 150)), ("mlp", demo_mlp), ("cnn", small_cnn))
    for name, build in builds:
        problem = build(args.device)
        base, ref = None, None
        for chunk in (int(c) for c in args.chunks.split(",")):
            sec, loss = timed(problem, args.grid, chunk, args.repeats)
            base = base or sec
            ref = loss if ref is None else ref
            print(f"{name:<10}{chunk:>6}{sec:>10.3f}{points / sec:>10.1f}{base / sec:>10.2f}"
                  f"{np.abs(loss - ref).max():>13.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
