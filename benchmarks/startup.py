"""Seconds from process start to the end of ``landscape --help`` and ``landscape spectrum --help``.

    python benchmarks/startup.py [--repeats 5]

Each run is a fresh ``python -m landscape_cli.main ...`` process (so each pays the interpreter's
start and every import), timed from outside; the table gives the median and the range over the
repeats, and whether torch was imported (``python -X importtime`` of the same command).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["spectrum", "--help"])


def seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "landscape_cli.main", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def imports_torch(args: list[str]) -> bool:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "landscape_cli.main", *args],
                          check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return any(line.split("|")[-1].strip() == "torch" for line in done.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    subprocess.run([sys.executable, "-c", "pass"], check=True)  # warm the interpreter's files
    print("| command | median s | min s | max s | torch imported |")
    print("| --- | --- | --- | --- | --- |")
    for args in COMMANDS:
        times = [seconds(args) for _ in range(opts.repeats)]
        print(f"| landscape {' '.join(args)} | {statistics.median(times):.3f} | {min(times):.3f} "
              f"| {max(times):.3f} | {'yes' if imports_torch(args) else 'no'} |")


if __name__ == "__main__":
    main()
