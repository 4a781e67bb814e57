"""Top-k matvecs over start vectors: landscape's Lanczos against hessian-eigenthings' at its best.

``python benchmarks/topk_seeds.py [--workload mlp] [--k 1 5] [--seeds 10]`` runs, for each seed,
landscape's ``top{k}`` task and hessian-eigenthings' ``top{k}:steps`` (its Lanczos told the
fewest steps at which it reports convergence, found by running its iteration one step at a
time: a run told that count takes as many products) and prints both matvec counts and their
medians. One seed's ratio moves by ±10% with the start vector; the medians say which solver
needs fewer products. Needs hessian-eigenthings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.adapters import Settings  # noqa: E402
from benchmarks.workloads import build  # noqa: E402


def counts(name: str, k: int, seeds: int, size: str = "real") -> list[tuple[int, int, int]]:
    """(seed, our matvecs, eigenthings' fewest converging steps) for seeds 0..seeds-1."""
    from benchmarks.adapters import eigenthings_, landscape_

    w = build(name, "cpu", size=size)
    rows = []
    for seed in range(seeds):
        s = Settings(seed=seed)
        ours = landscape_.tasks(w, s)[f"top{k}"]()
        theirs = eigenthings_.tasks(w, s)[f"top{k}:steps"].fewest()  # its run takes as many
        rows.append((seed, ours.matvecs, theirs))
        print(f"| {name} | {k} | {seed} | {rows[-1][1]} | {rows[-1][2]} |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="mlp")
    ap.add_argument("--size", default="real")
    ap.add_argument("--k", type=int, nargs="*", default=[1, 5])
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| workload | k | seed | landscape matvecs | eigenthings' fewest steps |")
    print("|---|---:|---:|---:|---:|")
    for k in args.k:
        rows = counts(args.workload, k, args.seeds, args.size)
        ours = statistics.median(r[1] for r in rows)
        theirs = statistics.median(r[2] for r in rows)
        print(f"| {args.workload} | {k} | median | {ours:g} | {theirs:g} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
