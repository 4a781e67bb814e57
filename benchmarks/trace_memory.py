"""Peak resident memory of the default ``trace`` (XTrace, 100 matvecs) on a wide MLP, and what the
memory plan (``landscape.memplan``) expected, in this process.

``PYTHONPATH=. python benchmarks/trace_memory.py [--params 4e6] [--limit-gib G] [--resnet18]``
prints one line (``--resnet18``: the CIFAR ResNet-18 layout of ``landscape.loading.zoo``, 11.2M
parameters, on 16 random 32x32 images, the issue's case, instead of the MLP):
P, the peak RSS above the start (Linux ``VmHWM`` after a reset through ``/proc/self/clear_refs``),
the seconds, the matvecs of a run and the plan's note. ``--limit-gib`` pretends that only G GiB
are free (the plan then shrinks the run or refuses). Run it with PYTHONPATH pointing at an older
checkout to compare (the plan is then absent).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=float, default=4e6)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--limit-gib", type=float, default=None)
    ap.add_argument("--resnet18", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from landscape.analyses.trace import trace
    from landscape.problem import Problem

    torch.manual_seed(0)
    if args.resnet18:
        from landscape.loading import zoo

        model = zoo.resnet(width=64, blocks=(2, 2, 2, 2)).eval()
        x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    else:
        d_in, d_out = 256, 10
        hidden = int(args.params / (d_in + d_out + 1))
        model = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out))
        x = torch.randn(args.samples, d_in)
        y = torch.randint(0, d_out, (args.samples,))
    pr = Problem(model, x, y, loss="cross-entropy", batch_size=len(y))
    if args.limit_gib is not None:
        from landscape import memplan

        memplan.available_bytes = lambda device="cpu": int(args.limit_gib * 2**30)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    start = _status("VmRSS")
    t0 = time.perf_counter()
    try:
        r = trace(pr, method="xtrace")
        note = getattr(r, "memory_note", "") or "-"
        what = (f"estimate {r.estimate:.5g} (stderr {r.stderr:.3g}), "
                f"{r.whole.result.matvecs} matvecs; "
                f"note: {note}; block {getattr(r, 'probe_block', '-')}")
    except Exception as e:  # noqa: BLE001 - the refusal is a result
        what = f"{type(e).__name__}: {e}"
    peak = _status("VmHWM") - start
    print(f"P={pr.size:,} peak {peak / 2**30:.2f} GiB above the start, "
          f"{time.perf_counter() - t0:.1f} s; {what}")


if __name__ == "__main__":
    main()
