"""Run the benchmark suite: every workload, every question, every installed tool, one table.

    python benchmarks/run.py --quick          # CI-sized (workload 1), prints only
    python benchmarks/run.py                  # full table, writes benchmarks/RESULTS.md
    python benchmarks/run.py --device cuda    # adds the GPU-only workloads, CUDA section
    python benchmarks/run.py --device cuda --workloads gpt2 --no-study --save part2.pkl
    python benchmarks/run.py --combine part1.pkl part2.pkl   # one section from several runs

Reference tools come from a separate environment (``benchmarks/requirements.txt``); a tool that
is not installed is skipped with a note, or stops the run (exit 2) when ``--tools`` names it.
See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.adapters import Settings, load_all  # noqa: E402
from benchmarks.measure import measure_together, one_line  # noqa: E402
from benchmarks.page import combine, machine, publish, save_run  # noqa: E402
from benchmarks.reference import Reference, exact_hessian, reference  # noqa: E402
from benchmarks.rows import Row, score  # noqa: E402
from benchmarks.trace_efficiency import planted, study  # noqa: E402
from benchmarks.workloads import build_all  # noqa: E402
from landscape.compat import set_tf32  # noqa: E402

QUESTIONS = ("top1", "top5", "trace", "slq", "hvp", "grad", "block", "singles")
RUN_ORDER = ("hvp", "grad", "block", "singles", "top1", "top5", "slq", "trace")  # cheap first
COST = ("hvp", "grad", "block", "singles")  # timed together: their ratios are the targets


def log(msg: str) -> None:
    """Progress on stderr."""
    print(msg, file=sys.stderr, flush=True)


def _groups(queue: list[tuple[str, str, object]]) -> list[list[tuple[str, str, object]]]:
    """Consecutive tasks of one question (the product-cost questions together), whose runs
    are interleaved so that the ratios between tools hold on a machine with a varying load."""
    out: list[list[tuple[str, str, object]]] = []
    last = None
    for item in queue:
        q = item[1].split(":")[0]
        kind = "cost" if q in COST else q
        if kind != last:
            out.append([])
            last = kind
        out[-1].append(item)
    return out


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
            note = f"{a.NAME}: not installed, skipped (see benchmarks/requirements.txt)"
            log(note)
            if args.tools:  # named on the command line: a run without it would not answer
                log(f"error: --tools names {a.NAME}, which this Python ({sys.executable}) "
                    "cannot import")
                raise SystemExit(2)
            notes.append(note)
    rows: list[Row] = []
    refs: dict[str, str] = {}
    for w in workloads:
        t0 = time.perf_counter()
        log(f"[{w.name}] P={w.n_params}, N={w.n_samples}: reference...")
        if args.no_reference:
            ref = Reference(np.zeros(0), float("nan"), float("nan"), None,
                            "none (--no-reference: times and matvecs only)")
        else:
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
        queue = [t for t in queue if not args.questions or t[1].split(":")[0] in args.questions
                 or t[1] in args.questions]  # a question, or one task key (trace:xtrace)
        queue = [t for t in queue if f"{t[0]}:{t[1]}" not in (args.skip or ())]
        queue.sort(key=lambda t: RUN_ORDER.index(t[1].split(":")[0]))
        skipped: dict[str, list[str]] = {}
        for group in _groups(queue):
            spent = [(time.perf_counter() - args.started, args.budget, "the suite's"),
                     (time.perf_counter() - t0, args.workload_budget, "this workload's")]
            over = [f"{what} time budget ({b:.0f} s)" for t, b, what in spent
                    if b is not None and t > b]
            if over:
                skipped.setdefault(over[0], []).extend(f"{n} {k}" for n, k, _ in group)
                continue
            t1 = time.perf_counter()
            found = measure_together([task for _, _, task in group], device, args.repeats,
                                     max_seconds=args.task_seconds)
            log(f"[{w.name}] {', '.join(k for _, k, _ in group)} ({len(group)} tasks, "
                f"interleaved): {time.perf_counter() - t1:.1f} s")
            for (name, key, _), m in zip(group, found):
                row = Row(w.name, key, name, m)
                n = len(m.times)
                if m.ok and n < args.repeats:
                    notes.append(f"{name} {key} on {w.name}: {n} timed run(s), not "
                                 f"{args.repeats}: one run takes {m.seconds:.1f} s "
                                 f"(--task-seconds {args.task_seconds:.0f})")
                score(row, ref)
                rows.append(row)
            save_run(args, s, device, rows, notes, versions, refs)
        notes += [f"{w.name}: not run, {why} (reference included) was spent: {', '.join(keys)}"
                  for why, keys in skipped.items()]
        save_run(args, s, device, rows, notes, versions, refs)
        log(f"[{w.name}] done in {time.perf_counter() - t0:.0f} s")
    order = {n: i for i, n in enumerate(a.NAME for a in adapters)}
    rows.sort(key=lambda r: (r.workload, QUESTIONS.index(r.question), r.key != r.question,
                             order[r.tool]))
    rows.sort(key=lambda r: [w.name for w in workloads].index(r.workload))
    return rows, notes, versions, refs


def main(argv: list[str] | None = None) -> int:
    """Parse options, run (or --combine saved parts), print the tables, write RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI-sized workloads, 3 repeats")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; 3 quick)")
    p.add_argument("--workloads", nargs="*", help="subset of mlp resnet gpt resnet18 gpt2")
    p.add_argument("--size", choices=("quick", "cpu", "real", "cuda"), default=None,
                   help="workload sizes: real (issue 16's CPU sizes), cpu (a smoke test), cuda "
                   "(default: by device; quick with --quick)")
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
    p.add_argument("--skip", nargs="*", metavar="TOOL:KEY",
                   help="tasks left out, e.g. pyhessian:top5 eigenthings:top5:power (slow ones "
                   "at the realistic sizes)")
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
    p.add_argument("--no-reference", action="store_true",
                   help="no reference answers (no accuracy column): for the realistic sizes, "
                   "whose float64 Lanczos reference alone takes minutes")
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
           "notes": notes + list(args.note or []) + standing_notes(versions),
           "versions": versions, "refs": refs, "effs": effs,
           "wall": time.perf_counter() - start}
    if args.save is not None:
        with open(args.save, "wb") as f:
            pickle.dump(run, f)
        log(f"saved {args.save}")
    return publish(run, device.type, args.out if args.out is not None else
                   (None if args.quick else ROOT / "benchmarks" / "RESULTS.md"))


CURVLINOPS_NOTE = (
    "curvlinops' error on transformer workloads (e.g. 1.6e-3 on the gpt top-1) is a wrong product, "
    "not a solver tolerance: its HVP is `jvp` of `jacrev`, which on torch 2.13 is off through "
    "layer_norm (a column of the gpt workload's float64 Hessian 2.7e-2 to 5.4e-2 off against a "
    "central difference of the gradient, where `jvp` of `grad` and double backward agree with it "
    "to 5e-10); the exact reference is built by double backward for that reason "
    "(benchmarks/reference.py, tests/test_benchmark_reference.py)")


def standing_notes(versions: dict[str, str]) -> list[str]:
    """Notes that hold for every run with the tools present (why an answer is wrong)."""
    return [CURVLINOPS_NOTE] if "curvlinops" in versions else []


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


if __name__ == "__main__":
    sys.exit(main())
