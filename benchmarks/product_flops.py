"""The FLOP floor of a Hessian-vector product, against a gradient and against a rebuilt graph.

``python benchmarks/product_flops.py [--workloads mlp gpt resnet gpt2m]`` counts, with torch's
``FlopCounterMode`` (matrix products, convolutions and attention; elementwise ops are not
counted), the floating-point operations over every batch of a realistic CPU workload of:

- ``grad``: one plain gradient, forward and backward;
- ``graph``: building the gradient with its graph (``create_graph=True``), what a product that
  rebuilds the graph pays before its double backward (PyHessian with several batches,
  hessian-eigenthings always);
- ``kept``: the double backward ∇(gᵀv) through a kept gradient graph (landscape's single product
  while the graphs fit, ``memory.keeps_graphs``).

For a layer y = W x the gradient costs three products of its size (y, dx = Wᵀ dy, dW = dy xᵀ)
and the double backward six (Pearlmutter 1994: the tangent of the forward and of both backward
products), so ``kept / grad`` tends to 2 and ``kept / (graph + kept)`` to 2/3 on models made of
such layers: at equal matvecs no exact product that keeps the graph can run in less than about
two thirds of the time of one that rebuilds it, FLOP for FLOP. Deterministic: no timing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.adapters.landscape_ import problem  # noqa: E402
from benchmarks.workloads import build  # noqa: E402


def count(fn: Callable[[], object]) -> int:
    """Matrix-product FLOPs of one call of ``fn`` (``FlopCounterMode``)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def floor(name: str, size: str = "real") -> dict[str, int]:
    """FLOPs of ``grad``, ``graph`` and ``kept`` (see the module doc) summed over the batches
    of workload ``name``, plus ``P``."""
    pr = problem(build(name, "cpu", size=size))
    theta0 = pr.theta.detach()
    v = torch.randn(theta0.shape, generator=torch.Generator().manual_seed(0))
    out = {"grad": 0, "graph": 0, "kept": 0, "P": pr.size}
    for x, y in pr.batches:
        def gradient(create: bool, x=x, y=y) -> tuple[torch.Tensor, torch.Tensor]:
            theta = theta0.clone().requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(pr.batch_loss(theta, x, y), theta,
                                           create_graph=create)
            return theta, g

        out["grad"] += count(lambda: gradient(False))
        out["graph"] += count(lambda: gradient(True))
        theta, g = gradient(True)
        out["kept"] += count(lambda g=g, theta=theta: torch.autograd.grad(g, theta, v))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="*", default=["mlp", "gpt", "resnet", "gpt2m"])
    ap.add_argument("--size", default="real", help="workload size (default: real)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| workload | P | gradient GFLOP | graph GFLOP | kept double backward GFLOP | "
          "kept / gradient | kept / (graph + kept) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.workloads:
        f = floor(name, args.size)
        g, b, k = f["grad"] / 1e9, f["graph"] / 1e9, f["kept"] / 1e9
        print(f"| {name} | {f['P']:,} | {g:.3f} | {b:.3f} | {k:.3f} | {k / g:.2f} | "
              f"{k / (b + k):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
