"""GPT-2 small from ``transformers`` (124M parameters, random weights, 8×128 tokens) through
``landscape``: seconds per gradient and per Hessian-vector product, their ratio, peak memory
beside ``landscape.memory``'s estimate, and (``--top1``) the wall time of the top eigenvalue.

    python benchmarks/hf_gpt2_small.py [--device cuda] [--top1] [--threads N]

Prints one Markdown table row for ``benchmarks/RESULTS.md`` (section "Hugging Face GPT-2
small"). It needs ``transformers`` (``pip install "landscape[hf]"``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import landscape  # noqa: E402
from benchmarks.measure import PeakMemory  # noqa: E402
from landscape import memory  # noqa: E402
from landscape.curvature import make_operator  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, int]:
    with PeakMemory(device) as peak:
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
    return time.perf_counter() - start, peak.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top1", action="store_true", help="also time the top eigenvalue")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = transformers.GPT2LMHeadModel(config)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (8, 128), generator=g)
    batch = [{"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}]
    device = torch.device(args.device)
    model.config._attn_implementation = "eager"  # as landscape.loading.hf builds it
    problem = landscape.Problem(model, batch, loss="causal-lm", device=device)
    est = memory.estimate(problem)
    top = ""
    if args.top1:  # first, in a fresh process: the Krylov basis is planned from free memory
        found = []

        def progress(done: int, total: int | None) -> None:
            print(f"top-1: {done} products, {time.perf_counter() - t0:.0f} s", flush=True)

        t0 = time.perf_counter()
        t_top, m_top = _timed(lambda: found.append(landscape.spectrum(
            problem, top_k=1, tol=1e-3, density=False, progress=progress)), device)
        w = found[0].whole
        top = (f"{t_top:.0f} s, {w.matvecs} products, λ₁ {w.eigenvalues[0]:.4g}, "
               f"{'converged' if w.converged else 'NOT converged'}, peak {m_top / 2.0**20:.0f} "
               f"MiB{'; ' + w.memory_note if w.memory_note else ''}")
        print(top, flush=True)
        found.clear()
    theta2 = problem.theta + 1e-3
    problem.loss_and_grad(theta2)  # warm-up
    t_grad, m_grad = _timed(lambda: problem.loss_and_grad(theta2 + 1e-3), device)
    op = make_operator(problem)
    v = torch.randn(problem.size, generator=g).to(device)
    t_first, m_first = _timed(lambda: op(v), device)  # gradient graph + double backward
    t_hvp, m_hvp = _timed(lambda: op(v), device)  # the graph kept: one backward
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} threads"
    print("| device | P | gradient s | HVP s (first, graph kept) | HVP/gradient | peak MiB "
          "(grad, first HVP) | estimated MiB | top-1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    mib = 2.0**20
    print(f"| {name} | {problem.size / 1e6:.1f}M | {t_grad:.2f} | {t_first:.2f}, {t_hvp:.2f} | "
          f"{t_first / t_grad:.2f}, {t_hvp / t_grad:.2f} | {m_grad / mib:.0f}, "
          f"{max(m_first, m_hvp) / mib:.0f} | {est.peak / mib:.0f} | {top or 'not run'} |")


if __name__ == "__main__":
    main()
