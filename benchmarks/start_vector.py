"""Lanczos' matvecs from a random start against a start enriched with the gradient.

``python benchmarks/start_vector.py [--workloads mlp gpt] [--seeds 4] [--k 1 5]`` runs
``lanczos(tol=1e-3)`` on a realistic CPU workload from the random start of each seed and from
r/|r| + g/|g| (r that seed's random vector, g the whole-set gradient), and prints the matvecs and
the top eigenvalue of each. The gradient of a network lies mostly in its top Hessian eigenspace
(Gur-Ari, Roberts, Dyer 2018, "Gradient descent happens in a tiny subspace"), which is what the
enriched start bets on; ``tests/test_linalg_lanczos.py`` shows the bet lost, where the gradient
avoids the top eigenvector and the residual test certifies the second eigenvalue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.adapters.landscape_ import problem  # noqa: E402
from benchmarks.workloads import build  # noqa: E402
from landscape.curvature import make_operator  # noqa: E402
from landscape.linalg.lanczos import lanczos  # noqa: E402


def compare(name: str, seeds: int, ks: list[int], size: str = "real") -> list[tuple]:
    """Rows (k, seed, matvecs random, matvecs enriched, top eigenvalue random, enriched)."""
    pr = problem(build(name, "cpu", size=size))
    _, g = pr.loss_and_grad()
    g = g.double() / g.norm()
    rows = []
    for k in ks:
        for seed in range(seeds):
            r = torch.randn(pr.size, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(seed))
            plain = lanczos(make_operator(pr), k=k, tol=1e-3, seed=seed)
            enriched = lanczos(make_operator(pr), k=k, tol=1e-3, start=r / r.norm() + g)
            rows.append((k, seed, plain.matvecs, enriched.matvecs,
                         float(plain.eigenvalues[0]), float(enriched.eigenvalues[0])))
            print(f"| {name} | {k} | {seed} | {rows[-1][2]} | {rows[-1][3]} | "
                  f"{rows[-1][4]:.6g} | {rows[-1][5]:.6g} |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="*", default=["mlp", "gpt"])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--k", type=int, nargs="*", default=[1, 5])
    ap.add_argument("--size", default="real", help="workload size (default: real)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| workload | k | seed | matvecs, random start | matvecs, enriched | top, random | "
          "top, enriched |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.workloads:
        compare(name, args.seeds, args.k, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
