"""Time per Hessian-vector product with 1 and 2 processes (torchrun, Gloo on the CPU).

The workload is an MLP (256 -> 512 -> 512 -> 10, ~400k parameters) on 8192 samples in batches
of 512: each rank applies its half of the batches and the product is all-reduced, so the ideal
is half the one-process time. Every process uses one thread, so 2 processes use 2 cores where
1 uses one; the one-process run with 2 threads is shown too, as the fair rival on the same
cores. Reported: median seconds per product over several, matvecs counted, speed-up and
parallel efficiency (speed-up / processes).

    python benchmarks/distributed_speed.py [--products 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

WORKER = """
import json, os, statistics, sys, time
import torch
from torch import nn
from landscape.curvature import make_operator
from landscape.problem import Problem

threads, products, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(256, 512), nn.Tanh(), nn.Linear(512, 512), nn.Tanh(),
                      nn.Linear(512, 10))
g = torch.Generator().manual_seed(1)
x, y = torch.randn(8192, 256, generator=g), torch.randint(0, 10, (8192,), generator=g)
problem = Problem(model, x, y, batch_size=512)
op = make_operator(problem)
v = torch.randn(problem.size, generator=g)
op(v)  # warm-up (and the kept gradient graphs, if any)
times = []
for _ in range(products):
    start = time.perf_counter()
    hv = op(v)
    times.append(time.perf_counter() - start)
if int(os.environ.get("RANK", "0")) == 0:
    json.dump({"seconds": statistics.median(times), "matvecs": op.matvecs,
               "params": problem.size, "norm": float(hv.norm())}, open(out, "w"))
"""


def _run(nproc: int, threads: int, products: int, directory: str) -> dict:
    script = os.path.join(directory, "worker.py")
    with open(script, "w") as f:
        f.write(WORKER)
    out = os.path.join(directory, f"r{nproc}_{threads}.json")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if nproc == 1:
        cmd = [sys.executable, script, str(threads), str(products), out]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", str(nproc), script, str(threads), str(products), out]
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        runs = [(1, 1), (2, 1), (1, 2)]
        results = {r: _run(*r, args.products, d) for r in runs}
    base = results[(1, 1)]["seconds"]
    print(f"{results[(1, 1)]['params']} parameters, 8192 samples, batches of 512, "
          f"{args.products} products after a warm-up, {os.cpu_count()} CPUs")
    print(f"{'processes':>9} {'threads each':>12} {'s / product':>12} {'matvecs':>8} "
          f"{'speed-up':>9} {'efficiency':>10} {'|Hv|':>10}")
    for (nproc, threads), r in results.items():
        speed = base / r["seconds"]
        cores = nproc * threads
        print(f"{nproc:>9} {threads:>12} {r['seconds']:>12.4f} {r['matvecs']:>8} "
              f"{speed:>9.2f} {speed / cores:>10.2f} {r['norm']:>10.5g}")


if __name__ == "__main__":
    main()
