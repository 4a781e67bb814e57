"""Cost of one curvature product against a gradient, landscape only, on the realistic CPU sizes.

``python benchmarks/product_cost.py [--workloads mlp gpt resnet gpt2m] [--repeats 5]
[--compile]`` prints one markdown row per (workload, task): the median seconds of interleaved
repeats (one run of every task in turn, so that a busy spell of a shared machine falls on all
of them), the ratio to a plain ``torch.autograd.grad`` over the same batches, the matvecs per
run and the peak resident memory above the start of the run (Linux: ``VmHWM`` after resetting
it through ``/proc/self/clear_refs``; the model and data are resident before).

Tasks: ``grad`` (plain autograd over the model's parameters), ``loss_and_grad``
(``Problem.loss_and_grad``), ``hvp:ror`` (one product by double backward, the batches' gradient
graphs kept: landscape's single-vector path), ``hvp:ror-fresh`` (the same, graphs rebuilt every
product), ``hvp:for`` (forward-over-reverse, ``jvp`` of ``grad``), ``block16`` (16 probes in one
vmapped block, per probe), ``auto16`` (16 probes with the measured block size, per probe; the
choice is printed), ``hvp:compile`` (``torch.compile`` of the per-batch double backward).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.adapters.landscape_ import problem  # noqa: E402
from benchmarks.workloads import build  # noqa: E402
from landscape.curvature import CurvatureOperator  # noqa: E402


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_mib(fn: Callable[[], object]) -> float:
    """Peak resident memory above the start while ``fn`` runs (MiB; 0 where unknown)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return float("nan")
    start = _rss_kib("VmRSS")
    fn()
    return (_rss_kib("VmHWM") - start) / 1024


def tasks(name: str, compile_: bool) -> tuple[dict[str, tuple[Callable[[], object], int]], dict]:
    """Zero-argument tasks and their matvecs per run; ``info`` gets P and the block choice."""
    w = build(name, "cpu", size="real")
    pr = problem(w)
    model, crit, batches = w.model(), w.criterion, w.batches()
    params = [p for p in model.parameters() if p.requires_grad]
    n = w.n_samples
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(pr.size, generator=gen)
    V = torch.randn(16, pr.size, generator=gen)

    def grad() -> object:
        gs = [torch.zeros_like(p) for p in params]
        for x, y in batches:
            loss = crit(model(x), y) * (len(y) / n)
            for acc, g in zip(gs, torch.autograd.grad(loss, params)):
                acc.add_(g)
        return gs

    kept = CurvatureOperator(pr, cache_graphs=True)
    fresh = CurvatureOperator(pr, cache_graphs=False)
    block = CurvatureOperator(pr, chunk=16)
    auto = CurvatureOperator(pr)
    fwd = CurvatureOperator(pr, chunk=16)

    def hvp_for() -> object:
        out = torch.zeros_like(v)
        for _, wt, xb, yb in pr.iter_indexed():
            out.add_(fwd._hvp(xb, yb)(v), alpha=wt)
        return out

    out = {
        "grad": (grad, 0),
        "loss_and_grad": (lambda: pr._loss_and_grad(pr.theta), 0),
        "hvp:ror": (lambda: kept(v), 1),
        "hvp:ror-fresh": (lambda: fresh(v), 1),
        "hvp:for": (hvp_for, 1),
        "block16": (lambda: block(V), 16),
        "auto16": (lambda: auto(V), 16),
    }
    if compile_:
        out["hvp:compile"] = (_compiled(pr, v), 1)
    return out, {"P": pr.size, "auto": auto}


def _compiled(pr, v: torch.Tensor) -> Callable[[], object]:
    """torch.compile of one batch's product θ, v -> H_b v (double backward inside)."""
    def hvp_b(theta: torch.Tensor, vec: torch.Tensor, xb, yb) -> torch.Tensor:
        return torch.func.jvp(torch.func.grad(lambda th: pr.batch_loss(th, xb, yb)),
                              (theta,), (vec,))[1]

    fn = torch.compile(hvp_b, dynamic=False)

    def run() -> object:
        out = torch.zeros_like(v)
        for _, wt, xb, yb in pr.iter_indexed():
            out.add_(fn(pr.theta, v, xb, yb), alpha=wt)
        return out

    return run


def memory(workloads: list[str], compile_: bool) -> int:
    """Peak resident memory of one run of every task, each in a fresh process (freed memory of
    an earlier task stays resident in the allocator, so one process would under-report)."""
    import subprocess

    names = ["grad", "loss_and_grad", "hvp:ror", "hvp:ror-fresh", "hvp:for", "block16", "auto16"]
    names += ["hvp:compile"] if compile_ else []
    print("| workload | task | peak MiB above the start (fresh process, one run) |")
    print("|---|---|---:|")
    for w in workloads:
        for k in names:
            r = subprocess.run([sys.executable, __file__, "--one", w, k], capture_output=True,
                               text=True)
            val = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else "FAILED"
            print(f"| {w} | {k} | {val} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="*", default=["mlp", "gpt", "resnet", "gpt2m"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also torch.compile of the product")
    ap.add_argument("--memory", action="store_true",
                    help="peak memory only: every task once in a fresh process")
    ap.add_argument("--tasks", nargs="*", metavar="TASK",
                    help="only these tasks (grad is always timed: the ratios divide by it)")
    ap.add_argument("--one", nargs=2, metavar=("WORKLOAD", "TASK"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.one:
        ts, _ = tasks(args.one[0], args.one[1] == "hvp:compile")
        print(f"{peak_mib(ts[args.one[1]][0]):.1f}")
        return 0
    if args.memory:
        return memory(args.workloads, args.compile)
    print("| workload | P | task | median s | / grad | matvecs | peak MiB | note |")
    print("|---|---:|---|---:|---:|---:|---:|---|")
    for name in args.workloads:
        ts, info = tasks(name, args.compile)
        if args.tasks:
            ts = {k: v for k, v in ts.items() if k == "grad" or k in args.tasks}
        times: dict[str, list[float]] = {k: [] for k in ts}
        peaks: dict[str, float] = {}
        errors: dict[str, str] = {}
        for k, (fn, _) in ts.items():  # warm-up, with the peak memory of the first run
            try:
                t0 = time.perf_counter()
                peaks[k] = peak_mib(fn)
                warm = time.perf_counter() - t0
                if k == "hvp:compile":
                    errors[k] = f"first call (compiling) {warm:.1f} s"
            except Exception as e:  # noqa: BLE001 - recorded, not raised
                errors[k] = f"FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
        for _ in range(args.repeats):
            for k, (fn, _) in ts.items():
                if errors.get(k, "").startswith("FAILED"):
                    continue
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
        g = statistics.median(times["grad"])
        for k, (_, mv) in ts.items():
            note = errors.get(k, "")
            if k == "auto16" and "auto" in info:
                note = f"block {info['auto'].blocks.how}"
            if not times[k]:
                print(f"| {name} | {info['P']:,} | {k} | — | — | {mv} | — | {note} |")
                continue
            m = statistics.median(times[k])
            per = m / mv if mv > 1 else m
            label = " (per probe)" if mv > 1 else ""
            print(f"| {name} | {info['P']:,} | {k}{label} | {per:.4f} | {per / g:.2f} | {mv} | "
                  f"{peaks.get(k, float('nan')):.0f} | {note} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
