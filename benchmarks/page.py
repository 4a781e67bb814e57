"""The results page: one device's markdown section, its place in ``RESULTS.md`` (a CPU and a
CUDA section, each replaced only by a run on that kind of device), and runs saved in parts
(``--save``) joined into one section (``--combine``), for machines whose calls are capped."""

from __future__ import annotations

import argparse
import datetime
import os
import pickle
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy
import torch

from benchmarks import report
from benchmarks.adapters import Settings
from benchmarks.rows import Row

ROOT = Path(__file__).resolve().parent.parent


def machine(device: torch.device) -> dict[str, str]:
    """CPU model, cores, device name and library versions."""
    cpu = platform.processor() or "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"model name\s*:\s*(.+)", text)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({cpu})"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": str(os.cpu_count()), "torch threads": str(torch.get_num_threads()),
        "device": dev, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "scipy": scipy.__version__, "commit": _commit(),
    }


def _commit() -> str:
    """The checkout's short commit, marked when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + (" with uncommitted changes" if dirty.strip() else "")


def save_run(args: argparse.Namespace, s: Settings, device: torch.device, rows: list[Row],
                 notes: list[str], versions: dict[str, str], refs: dict[str, str]) -> None:
    """With --save, pickle what is done so far: it survives a run killed at a time limit."""
    if args.save is None:
        return
    with open(args.save, "wb") as f:
        pickle.dump({"args": args, "settings": s, "meta": machine(device), "rows": list(rows),
                     "notes": list(notes), "versions": versions, "refs": dict(refs), "effs": [],
                     "wall": time.perf_counter() - args.started}, f)


def section(args: argparse.Namespace, s: Settings, meta: dict[str, str], rows: list[Row],
            notes: list[str], versions: dict[str, str], refs: dict[str, str],
            effs: list, wall: float) -> list[str]:
    """The markdown of one device's results."""
    cs = report.costs(rows, s.block_k)
    at = f" at commit {meta['commit']}" if meta.get("commit") else ""
    lines = [f"Measured {meta['date']}{at} on **{meta['device']}**; {meta['cores']} cores "
             f"({meta['torch threads']} torch threads); python {meta['python']}, torch "
             f"{meta['torch']}, numpy {meta['numpy']}, scipy {meta['scipy']}; "
             + ", ".join(f"{k} {v}" for k, v in versions.items())
             + f". Whole suite: {wall:.0f} s, {args.repeats} timed repeats after one warm-up "
             f"(median), {'--quick' if args.quick else 'full'} sizes"
             + ("; TF32 off for every tool (IEEE float32 matmuls and convolutions)"
                if meta["device"] != "cpu" and not meta["device"].startswith("CPU") else "")
             + ".", "",
             f"Questions: top-1/top-5 at tol {s.tol:g}; trace at {s.trace_budget} matvecs; "
             f"{s.slq_steps}-step SLQ (one run); HVP vs gradient; {s.block_k} probes in one "
             "block vs single calls. Peak memory is the sampled process RSS above the start "
             "on CPU, `torch.cuda.max_memory_allocated` above the start on CUDA.", "",
             "Workloads:", ""]
    lines += [f"- **{k}**: {v}" for k, v in refs.items()]
    if getattr(args, "size", None) == "real":
        lines += ["", "### Targets (issue 16)", ""] + report.targets_real(rows, cs, s.tol)
    else:
        lines += ["", "### Targets (issues 3 and 4)", ""] + report.targets(rows, cs, effs, s.tol)
    lines += ["", "### Eigenvalues, traces, densities", ""] + report.main_table(rows)
    lines += ["", "rel. error: max over the k eigenvalues of |λ - λ*| / |λ*|; for traces "
              "|t - t*| / |t*|; for densities the 1-Wasserstein distance to the exact "
              "eigenvalue distribution divided by the spectral range (workload 1 only).", ""]
    lines += ["### Cost of one product", ""] + report.cost_table(cs, s.block_k)
    lines += ["", "### Trace estimators: matvecs to reach Hutchinson's error", "",
              "RMS relative error over 30 seeds (10 with --quick) on dense operators (cheap "
              "products).", ""]
    lines += report.efficiency_table(effs) if effs else [
        "Not run in this section (the study is on dense operators: see the CPU section)."]
    if notes:
        lines += ["", "### Notes", ""] + [f"- {n}" for n in notes]
    return lines


def write_results(path: Path, device: torch.device, body: list[str]) -> None:
    """Replace this device's section of RESULTS.md, keeping the other one and the section that
    the other benchmark scripts' figures are copied into."""
    kinds = ("cpu", "cuda")
    old = path.read_text() if path.exists() else ""
    parts: dict[str, str] = {}
    for kind in kinds:
        found = re.search(rf"<!-- {kind}:start -->\n(.*?)<!-- {kind}:end -->", old, re.S)
        parts[kind] = found.group(1) if found else f"## {kind.upper()} table: not yet measured\n"
    parts[device.type] = f"## {device.type.upper()} table\n\n" + "\n".join(body) + "\n"
    text = ["# Benchmark results", "",
            "Written by `python benchmarks/run.py` (see `benchmarks/README.md`). "
            "Ratios are ours / theirs: below 1 means landscape is faster or uses fewer "
            "matvecs.", ""]
    for kind in kinds:
        text += [f"<!-- {kind}:start -->", parts[kind].rstrip("\n"), f"<!-- {kind}:end -->", ""]
    for name in ("others", "hf"):  # the figures other scripts measure (data_memory.py,
        # distributed_speed.py; hf_gpt2_small.py) stay as they are
        kept = re.search(rf"<!-- {name}:start -->\n.*?<!-- {name}:end -->", old, re.S)
        if kept:
            text += [kept.group(0), ""]
    path.write_text("\n".join(text))


def publish(run: dict, kind: str, out: Path | None) -> int:
    """Print one device's section and write it into ``out`` (when given)."""
    body = section(run["args"], run["settings"], run["meta"], run["rows"], run["notes"],
                   run["versions"], run["refs"], run["effs"], run["wall"])
    print("\n".join(body))
    if out is not None:
        write_results(out, torch.device(kind), body)
        print(f"wrote {out}", file=sys.stderr, flush=True)
    return 0


def combine(args: argparse.Namespace) -> int:
    """One section from the runs saved with --save (split across machines' time limits): rows,
    notes and workloads concatenated, wall times added, the first run's machine and study."""
    runs = []
    for path in args.combine:
        with open(path, "rb") as f:
            runs.append(pickle.load(f))
    first = runs[0]
    run = {**first, "rows": [r for x in runs for r in x["rows"]],
           "notes": [n for x in runs for n in x["notes"]],
           "refs": {k: v for x in runs for k, v in x["refs"].items()},
           "versions": {k: v for x in runs for k, v in x["versions"].items()},
           "effs": next((x["effs"] for x in runs if x["effs"]), []),
           "wall": sum(x["wall"] for x in runs)}
    measured = {n for x in runs for n in x["refs"]}
    done = {(r.workload, f"{r.tool} {r.key}") for r in run["rows"]}
    notes = []
    for n in run["notes"]:
        if any(n.startswith(f"{w}: skipped") for w in measured):
            continue
        found = re.match(r"(\w+): not run, (.*) was spent: (.*)", n)
        if found:  # drop what a later part did run
            w, why, keys = found.groups()
            keys = [k for k in keys.split(", ") if (w, k) not in done]
            n = f"{w}: not run, {why} was spent: {', '.join(keys)}" if keys else ""
        if n:
            notes.append(n)
    run["notes"] = notes + list(args.note or []) + [
        f"Measured in {len(runs)} runs (one device call each is capped at 10 minutes) and "
        "joined with --combine; the whole-suite time is their sum."]
    kind = "cuda" if not first["meta"]["device"].startswith("CPU") else "cpu"
    return publish(run, kind, args.out if args.out is not None else
                   ROOT / "benchmarks" / "RESULTS.md")
