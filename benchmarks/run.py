"""Run the benchmark suite: every workload, every question, every installed tool, one table.

    python benchmarks/run.py --quick          # CI-sized (workload 1), prints only
    python benchmarks/run.py                  # full table, writes benchmarks/RESULTS.md
    python benchmarks/run.py --device cuda    # adds the GPU-only workloads, CUDA section
    python benchmarks/run.py --device cuda --workloads gpt2 --no-study --save part2.pkl
    python benchmarks/run.py --combine part1.pkl part2.pkl   # one section from several runs

Reference tools come from a separate environment (``benchmarks/requirements.txt``); a tool that
is not installed is skipped with a note. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pickle
import platform
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import torch  # noqa: E402

from benchmarks import report  # noqa: E402
from benchmarks.adapters import Settings, load_all  # noqa: E402
from benchmarks.measure import measure, one_line  # noqa: E402
from benchmarks.reference import exact_hessian, reference  # noqa: E402
from benchmarks.rows import Row, score  # noqa: E402
from benchmarks.trace_efficiency import planted, study  # noqa: E402
from benchmarks.workloads import build_all  # noqa: E402
from landscape.compat import set_tf32  # noqa: E402

QUESTIONS = ("top1", "top5", "trace", "slq", "hvp", "grad", "block", "singles")
RUN_ORDER = ("hvp", "grad", "block", "singles", "top1", "top5", "slq", "trace")  # cheap first


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


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
        "numpy": np.__version__, "scipy": scipy.__version__,
    }


def run_workloads(args: argparse.Namespace, s: Settings, device: torch.device
                  ) -> tuple[list[Row], list[str], dict[str, str], dict[str, str]]:
    """All rows, notes (skips and failures), tool versions and reference descriptions."""
    workloads, notes = build_all(device, args.quick, args.workloads, args.size)
    adapters = [a for a in load_all() if not args.tools or a.NAME in args.tools]
    versions: dict[str, str] = {}
    for a in adapters:
        if a.available():
            versions[a.NAME] = a.version()
        else:
            notes.append(f"{a.NAME}: not installed, skipped (see benchmarks/requirements.txt)")
    rows: list[Row] = []
    refs: dict[str, str] = {}
    for w in workloads:
        t0 = time.perf_counter()
        log(f"[{w.name}] P={w.n_params}, N={w.n_samples}: reference...")
        ref = reference(w, trace=not args.questions or "trace" in args.questions)
        refs[w.name] = f"{w.description}; P = {w.n_params}; reference: {ref.how}"
        queue = []
        for a in adapters:
            if a.NAME not in versions:
                continue
            try:
                tasks = a.tasks(w, s)
            except Exception as e:  # a tool that cannot even wrap the model is a result
                notes.append(f"{a.NAME} on {w.name}: setup failed: {one_line(e)}")
                continue
            queue += [(a.NAME, key, task) for key, task in tasks.items()]
        # question by question, every tool in turn: a time budget cuts questions, not tools
        queue = [t for t in queue if not args.questions or t[1].split(":")[0] in args.questions]
        queue.sort(key=lambda t: RUN_ORDER.index(t[1].split(":")[0]))
        skipped: dict[str, list[str]] = {}
        for name, key, task in queue:
            spent = [(time.perf_counter() - args.started, args.budget, "the suite's"),
                     (time.perf_counter() - t0, args.workload_budget, "this workload's")]
            over = [f"{what} time budget ({b:.0f} s)" for t, b, what in spent
                    if b is not None and t > b]
            if over:
                skipped.setdefault(over[0], []).append(f"{name} {key}")
                continue
            t1 = time.perf_counter()
            row = Row(w.name, key, name, measure(task, device, args.repeats,
                                                 max_seconds=args.task_seconds))
            log(f"[{w.name}] {name} {key}: {time.perf_counter() - t1:.1f} s")
            n = len(row.m.times)
            if row.m.ok and n < args.repeats:
                notes.append(f"{name} {key} on {w.name}: {n} timed run(s), not {args.repeats}: "
                             f"one run takes {row.m.seconds:.1f} s (--task-seconds "
                             f"{args.task_seconds:.0f})")
            score(row, ref)
            rows.append(row)
            save_partial(args, s, device, rows, notes, versions, refs)
        notes += [f"{w.name}: not run, {why} (reference included) was spent: {', '.join(keys)}"
                  for why, keys in skipped.items()]
        save_partial(args, s, device, rows, notes, versions, refs)
        log(f"[{w.name}] done in {time.perf_counter() - t0:.0f} s")
    order = {n: i for i, n in enumerate(a.NAME for a in adapters)}
    rows.sort(key=lambda r: (r.workload, QUESTIONS.index(r.question), r.key != r.question,
                             order[r.tool]))
    rows.sort(key=lambda r: [w.name for w in workloads].index(r.workload))
    return rows, notes, versions, refs


def save_partial(args: argparse.Namespace, s: Settings, device: torch.device, rows: list[Row],
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
    lines = [f"Measured {meta['date']} on **{meta['device']}**; {meta['cores']} cores "
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
    lines += ["", "### Targets (issues 3 and 4)", ""]
    lines += report.targets(rows, cs, effs, s.tol)
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
    """Replace this device's section of RESULTS.md, keeping the other one."""
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
    path.write_text("\n".join(text))


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the tables, write RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized workloads, 3 repeats")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; 3 quick)")
    p.add_argument("--workloads", nargs="*", help="subset of mlp resnet gpt resnet18 gpt2")
    p.add_argument("--size", choices=("quick", "cpu", "cuda"), default=None,
                   help="workload sizes (default: by device; quick with --quick)")
    p.add_argument("--tools", nargs="*", help="subset of landscape pyhessian eigenthings "
                   "curvlinops")
    p.add_argument("--budget", type=float, default=1020.0,
                   help="seconds after which remaining tasks are skipped with a note")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for every tool (default 1 on CPU: these workloads are "
                   "small, and on a shared 2-core machine more threads slow every tool down)")
    p.add_argument("--out", type=Path, default=None,
                   help="results page (default benchmarks/RESULTS.md; --quick: none)")
    p.add_argument("--questions", nargs="*", help="subset of " + " ".join(QUESTIONS))
    p.add_argument("--workload-budget", type=float, default=None,
                   help="seconds per workload after which its remaining tasks are skipped")
    p.add_argument("--task-seconds", type=float, default=60.0,
                   help="fewer timed repeats (at least one) for a task whose repeats would take "
                   "longer than this; noted in the table")
    p.add_argument("--save", type=Path, default=None,
                   help="also pickle the raw results here, for --combine")
    p.add_argument("--combine", type=Path, nargs="+", default=None,
                   help="write one section from runs saved with --save; runs nothing")
    p.add_argument("--note", action="append", help="a line added to the section's notes")
    p.add_argument("--no-study", action="store_true",
                   help="skip the trace-estimator study (for a second --save part)")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    if args.combine:
        return combine(args)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but CUDA is not available")
    if device.type == "cuda":
        set_tf32(False)  # every tool in IEEE float32, as landscape's own Problem does
    if args.threads or device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    torch.manual_seed(0)
    s = Settings(trace_budget=24 if args.quick else 60)
    start = args.started = time.perf_counter()
    rows, notes, versions, refs = run_workloads(args, s, device)
    effs = [] if args.no_study else estimator_study(args.quick, "mlp" in refs)
    run = {"args": args, "settings": s, "meta": machine(device), "rows": rows,
           "notes": notes + list(args.note or []),
           "versions": versions, "refs": refs, "effs": effs,
           "wall": time.perf_counter() - start}
    if args.save is not None:
        with open(args.save, "wb") as f:
            pickle.dump(run, f)
        log(f"saved {args.save}")
    return publish(run, device.type, args.out if args.out is not None else
                   (None if args.quick else ROOT / "benchmarks" / "RESULTS.md"))


def estimator_study(quick: bool, with_mlp: bool) -> list:
    """Trace estimators on dense operators: matvecs to reach Hutchinson's error."""
    log("trace-estimator study...")
    P = 200 if quick else 500
    mats = [(f"planted spectrum (5 large eigenvalues, P={P})", planted(P), True)]
    if with_mlp:
        from benchmarks.workloads import build
        mats.append(("exact Hessian of the mlp workload (indefinite, not dominated by a few "
                     "eigenvalues: informational)", exact_hessian(build("mlp", "cpu")), False))
    return [study(name, M, seeds=10 if quick else 30, hutch_budget=96 if quick else 384,
                  target=t) for name, M, t in mats]


def publish(run: dict, kind: str, out: Path | None) -> int:
    """Print one device's section and write it into ``out`` (when given)."""
    body = section(run["args"], run["settings"], run["meta"], run["rows"], run["notes"],
                   run["versions"], run["refs"], run["effs"], run["wall"])
    print("\n".join(body))
    if out is not None:
        write_results(out, torch.device(kind), body)
        log(f"wrote {out}")
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

if __name__ == "__main__":
    sys.exit(main())
