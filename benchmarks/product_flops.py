"""The FLOP floor of a Hessian-vector product, against a gradient and against a rebuilt graph.

``python benchmarks/product_flops.py [--workloads mlp gpt resnet gpt2m]`` counts, with torch's
``FlopCounterMode`` (matrix products, convolutions and attention; elementwise ops are not
counted), the floating-point operations over every batch of a realistic CPU workload of the
three passes below. ``--meta --size cuda --workloads resnet18 gpt2`` counts the GPU sizes on
shape-only tensors (torch's meta device: nothing is computed, so any size takes a second):

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


def floor_meta(name: str, size: str) -> dict[str, int]:
    """The same counts as :func:`floor` on shape-only (meta) tensors: one batch of the
    workload's model and batch shape, times its number of batches."""
    from torch.func import functional_call

    from benchmarks.workloads import FACTORIES, SIZES
    from landscape.compat import math_attention

    model_kwargs, data_kwargs, batch = SIZES[name][size]
    factory, data_name, _ = FACTORIES[name]
    model = factory(**model_kwargs).eval().to("meta")
    params = {k: torch.empty_like(p).requires_grad_(True) for k, p in model.named_parameters()
              if p.requires_grad}
    state = {**dict(model.named_buffers()), **params}
    if data_name == "images":
        x = torch.empty(batch, 3, data_kwargs["size"], data_kwargs["size"], device="meta")
        y = torch.zeros(batch, dtype=torch.long, device="meta")
    elif data_name == "tokens":
        x = torch.zeros(batch, data_kwargs["seq_len"], dtype=torch.long, device="meta")
        y = torch.zeros(batch, data_kwargs["seq_len"], dtype=torch.long, device="meta")
    else:
        x = torch.empty(batch, data_kwargs["dim"], device="meta")
        y = torch.zeros(batch, dtype=torch.long, device="meta")

    def gradient(create: bool) -> tuple[torch.Tensor, ...]:
        out = functional_call(model, state, (x,))
        loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
        return torch.autograd.grad(loss, list(params.values()), create_graph=create)

    n_batches = -(-data_kwargs["n"] // batch)
    with math_attention():
        f = {"grad": count(lambda: gradient(False)), "graph": count(lambda: gradient(True))}
        g = gradient(True)
        f["kept"] = count(lambda: torch.autograd.grad(g, list(params.values()),
                                                      [torch.empty_like(t) for t in g]))
    out = {k: v * n_batches for k, v in f.items()}
    out["P"] = sum(p.numel() for p in params.values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="*", default=["mlp", "gpt", "resnet", "gpt2m"])
    ap.add_argument("--size", default="real", help="workload size (default: real)")
    ap.add_argument("--meta", action="store_true",
                    help="count on shape-only tensors (for the GPU sizes on a CPU)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| workload | P | gradient GFLOP | graph GFLOP | kept double backward GFLOP | "
          "kept / gradient | kept / (graph + kept) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.workloads:
        f = floor_meta(name, args.size) if args.meta else floor(name, args.size)
        g, b, k = f["grad"] / 1e9, f["graph"] / 1e9, f["kept"] / 1e9
        print(f"| {name} | {f['P']:,} | {g:.3f} | {b:.3f} | {k:.3f} | {k / g:.2f} | "
              f"{k / (b + k):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
