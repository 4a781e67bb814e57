"""Peak resident memory of `landscape inspect` against the size of a streamed data set.

A checkpoint names a DataLoader factory over a map-style Dataset whose samples are generated
from their index (3x64x64 float32 images, 48 KiB each), so the data never exist in memory as a
whole; `landscape inspect` runs in a fresh process per size and its peak RSS (ru_maxrss) is
read. Each run's whole-set loss is checked against an independent float64 loop over the same
samples. A second table times one pass over a small set kept on the device (cached) against
the same set streamed, which is what the cache budget trades.

    python benchmarks/data_memory.py                   # 0.1, 0.5 and 2 GB
    python benchmarks/data_memory.py --sizes 0.05 0.1  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

FACTORY = '''
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

SHAPE = (3, 64, 64)


class Generated(Dataset):
    """Sample i: a seeded Gaussian image and label i % 10; nothing is stored."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(SHAPE, generator=g), i % 10


def loader(n=1000, batch_size=256):
    return DataLoader(Generated(n), batch_size=batch_size)


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, 10))
'''

SAMPLE_BYTES = 3 * 64 * 64 * 4 + 8


def _write(directory: str, n: int) -> str:
    import torch

    with open(os.path.join(directory, "gen.py"), "w") as f:
        f.write(FACTORY)
    sys.path.insert(0, directory)
    import gen

    path = os.path.join(directory, f"ckpt_{n}.pt")
    spec = {"model": "gen.py:model", "data": "gen.py:loader", "data_kwargs": {"n": n},
            "loss": "cross-entropy"}
    torch.save({"state_dict": gen.model().state_dict(), "landscape": spec}, path)
    return path


def _exact_loss(directory: str, n: int) -> float:
    """The whole-set mean cross-entropy by a plain float64 loop (independent of landscape)."""
    import gen
    import torch

    model = gen.model().double()
    total = 0.0
    with torch.no_grad():
        for x, y in gen.loader(n, batch_size=1000):
            out = model(x.double())
            total += float(torch.nn.functional.cross_entropy(out, y, reduction="sum"))
    return total / n


def _inspect(path: str) -> tuple[float, float, float]:
    """(loss, peak RSS in MB, seconds) of `landscape inspect` in a fresh process."""
    code = (
        "import resource, sys, json\n"
        "from landscape_cli.main import main\n"
        "rc = main(['inspect', sys.argv[1], '--json', '-o', sys.argv[2]])\n"
        "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    out = path + ".h5"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code, path, out], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(run.stderr)
    rss = next(int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("RSS"))
    return json.loads(run.stdout)["inspect"]["loss"], rss / 1024, seconds


def _pass_times(directory: str, n: int, repeats: int = 3) -> tuple[float, float]:
    """Median seconds of one loss evaluation with the set cached and streamed."""
    import statistics

    import gen

    from landscape.problem import Problem

    out = []
    for cache in (True, False):
        p = Problem(gen.model(), gen.loader(n), cache=cache)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            p.loss()
            times.append(time.perf_counter() - start)
        out.append(statistics.median(times))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.1, 0.5, 2.0],
                        help="data-set sizes in GB")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'data GB':>8} {'samples':>8} {'peak RSS MB':>12} {'seconds':>8} "
          f"{'loss':>12} {'|loss - exact|':>15}")
    with tempfile.TemporaryDirectory() as directory:
        for gb in args.sizes:
            n = int(gb * 1e9 / SAMPLE_BYTES)
            path = _write(directory, n)
            loss, rss, seconds = _inspect(path)
            exact = _exact_loss(directory, n)
            print(f"{gb:>8.2f} {n:>8d} {rss:>12.0f} {seconds:>8.1f} {loss:>12.6f} "
                  f"{abs(loss - exact):>15.2e}")
        n = int(0.1e9 / SAMPLE_BYTES)
        cached, streamed = _pass_times(directory, n)
        print(f"one pass over 0.1 GB: cached {cached:.3f} s, streamed {streamed:.3f} s "
              f"({streamed / cached:.1f}x)")


if __name__ == "__main__":
    main()
