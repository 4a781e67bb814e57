"""``landscape check CKPT...``: rules over the analyses' numbers, as gates for CI (exit 1 fails)."""

from __future__ import annotations

import json
import os
from typing import Any

import click

from landscape import checks
from landscape.errors import InputError

from ..common import Session, analysis_options


def _table_options(lr: float | None) -> dict[str, dict[str, Any]]:
    """Per-analysis tables of the [check] config (``spectrum = {top-k = 3}``), with --lr."""
    from landscape.analyses import suite

    ctx = click.get_current_context()
    table = ctx.default_map or {}
    options = {k: dict(v) for k, v in table.items() if k in suite.NAMES and isinstance(v, dict)}
    if lr is not None:
        for name in ("sharpness", "ghost"):
            options.setdefault(name, {})["lr"] = lr
    return suite.check_options(options)


def _rules(given: tuple[str, ...]) -> list[checks.Rule]:
    table = click.get_current_context().default_map or {}
    texts = list(given) or list(table.get("rules", []))
    if isinstance(table.get("rules"), str):
        texts = list(given) or [table["rules"]]
    return checks.parse_rules(texts)


def _early_baseline(rules: list[checks.Rule], baseline: dict | None) -> None:
    """A rule on `baseline` without a file, or on a metric the file lacks: exit 2 before work."""
    for r in rules:
        if r.uses_baseline:
            if baseline is None:
                r.threshold(None)
            checks.rules.number(baseline, r.metric, r.text, where="the baseline")


def _write_reports(s: Session, outcomes: list, opts: dict[str, Any]) -> None:
    rep = checks.report
    seconds = 0.0
    if opts["junit"]:
        with open(opts["junit"], "w") as f:
            f.write(rep.junit(outcomes, seconds))
    md = rep.markdown(outcomes)
    if opts["markdown"]:
        with open(opts["markdown"], "w") as f:
            f.write(md)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(md + "\n")
    if os.environ.get("GITHUB_ACTIONS"):
        for line in rep.annotations(outcomes):
            click.echo(line, err=bool(opts["as_json"]))


@click.command("check")
@click.argument("ckpts", metavar="CKPT...", nargs=-1, type=click.Path())
@click.option("--rule", "rule", multiple=True, metavar="RULE",
              help="'METRIC OP VALUE', e.g. 'trace.estimate <= 1.2 * baseline' (repeatable; "
              "default: rules = [...] of the [check] config table).")
@click.option("--baseline", metavar="FILE.h5", type=click.Path(dir_okay=False),
              help="a result file of any command (or of check) that `baseline` refers to.")
@click.option("--reuse", metavar="FILE.h5", type=click.Path(dir_okay=False),
              help="check the groups of this result file instead of recomputing them.")
@click.option("--against", metavar="CKPT", type=click.Path(),
              help="second endpoint for rules on lmc.*.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="learning rate for sharpness.eos_ratio and ghost.r.")
@click.option("--junit", metavar="FILE.xml", help="write a JUnit XML report.")
@click.option("--markdown", metavar="FILE.md",
              help="write a Markdown report (also appended to $GITHUB_STEP_SUMMARY when set).")
@analysis_options
def check(ckpts: tuple[str, ...], rule: tuple[str, ...], baseline: str | None,
          reuse: str | None, against: str | None, lr: float | None, **opts) -> int:
    """Gate CKPT on RULEs: exit 0 when all hold, 1 when one fails, 2 on bad input.

    Each analysis a rule names runs once. A rule on an estimate with a standard error (the
    trace) fails only when it misses by more than the combined confidence interval of the
    value and the baseline. Rules and per-analysis options may come from the config:

    \b
      [check]                                    # landscape.toml or --config FILE
      rules = ["trace.estimate <= 1.2 * baseline"]
      trace = {probes = 50}
      spectrum = {top-k = 3}

    \b
    Example:
      landscape check data/demo_a.pt --rule 'spectrum.lambda_max < 1' -o base.h5
      landscape check data/demo_a.pt --rule 'trace.estimate <= 1.2 * baseline' \\
          --baseline base.h5 --junit report.xml --markdown report.md
      landscape check a.pt --against b.pt --rule 'lmc.barrier_loss < 0.1'
    """
    from landscape.analyses import suite
    from landscape.checks.result import CheckResult
    from landscape.results import merge_trees, read_summary, result_summary, write_result

    rules = _rules(rule)
    options = _table_options(lr)
    base = read_summary(baseline) if baseline else None
    _early_baseline(rules, base)
    reused = read_summary(reuse) if reuse else None
    if not ckpts and reused is None:
        raise InputError("give a checkpoint to check (or `reuse` a result file)")
    s = Session("check", opts)
    names = checks.needed(rules)
    results, summaries, labels, problem, matvecs, seen = [], [], [], None, 0, []
    for i, ckpt in enumerate(ckpts or [None]):
        own = reused if (reused is not None and i == 0) else {}
        todo = [n for n in names if n not in own]
        found: dict = {}
        if todo and ckpt is None:
            raise InputError(f"{reuse} has no {todo[0]} result and no checkpoint was given")
        if todo:
            problem = s.open(ckpt)
            found = suite.run(problem, todo, options, against=against, seed=opts["seed"] or 0,
                              progress=lambda n: s.progress(n))
            s.notes()
            seen += problem.origin.checkpoints
        run = s.run_info(problem)
        matvecs += sum(int(getattr(r, "matvecs", 0) or 0) for r in found.values())
        summaries.append(merge_trees([own] + [result_summary(r, run) for r in found.values()]))
        results.append(found)
        labels.append(ckpt or reuse)
    outcomes = []
    for summary, label in zip(summaries, labels):
        outcomes += checks.evaluate(rules, summary, base, checkpoint=label)
    result = CheckResult(results, outcomes, reused=[reused or {}], matvecs=matvecs)
    run = s.run_info(problem, matvecs=matvecs, baseline=baseline or "", reuse=reuse or "")
    run.checkpoints = seen
    out = s.out_path()
    write_result(out, result, run)
    if opts["as_json"]:
        report = checks.report.as_json(outcomes)
        report["results"] = summaries[0] if len(summaries) == 1 else summaries
        click.echo(json.dumps(report))
    else:
        for line in checks.report.table(outcomes):
            click.echo(line)
    _write_reports(s, outcomes, opts)
    click.echo(f"wrote {out}", err=True)
    return 0 if result.passed else 1


COMMANDS = [check]
