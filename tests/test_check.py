"""``landscape check``: rules, exit status, reports read by real parsers, baselines with error
bars (a linear model whose data scaled by 2 has a 4x larger Hessian)."""

import json
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from landscape.checks import evaluate, needed, parse_rule, parse_rules
from landscape.errors import InputError

DEMO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "data", "demo_a.pt"))
FAST = ["--max-samples", "64", "--device", "cpu"]

LINEAR_MODEL = '''from torch import nn


def make(d_in=24, d_out=4):
    return nn.Linear(d_in, d_out, bias=False)
'''


def test_rules_parse_and_reject_without_eval():
    r = parse_rule("trace.estimate <= 1.2 * baseline")
    assert (r.metric, r.op, r.uses_baseline) == ("trace.estimate", "<=", True)
    t = r.threshold(2.0)
    assert t.v == pytest.approx(2.4) and t.d == pytest.approx(1.2)
    t = parse_rule("spectrum.eigenvalues[1] > -(baseline + 0.05) / 2").threshold(1.0)
    assert t.v == pytest.approx(-0.525) and t.d == pytest.approx(-0.5)
    assert parse_rule("ghost.r < 1").threshold().v == 1.0
    assert needed(parse_rules(["lmc.barrier_loss < 1", "trace.estimate < 3", "trace.stderr < 1"])
                  ) == ["trace", "lmc"]
    for bad in ["trace.estimate == 3", "trace.estimate < 3 +", "trace.estimate < os.system(1)",
                "trace.estimate < (1", "foo.bar < 1", "estimate < 1",
                "trace.estimate < 2 baseline"]:
        with pytest.raises(InputError, match="rule"):
            parse_rule(bad)
    with pytest.raises(InputError, match="baseline"):
        parse_rule("trace.estimate < baseline").threshold(None)


def test_evaluate_uses_the_combined_interval_only_for_estimates():
    rule = parse_rules(["trace.estimate <= 1.0 * baseline", "inspect.loss <= baseline"])
    value = {"trace": {"estimate": 10.5, "stderr": 0.3}, "inspect": {"loss": 0.51}}
    base = {"trace": {"estimate": 10.0, "stderr": 0.4}, "inspect": {"loss": 0.5}}
    t, loss = evaluate(rule, value, base)
    half = 1.959964 * 0.5  # z * sqrt(0.3^2 + 0.4^2)
    assert t.passed and t.half_width == pytest.approx(half, rel=1e-5) and t.margin == -0.5
    assert "inside" in t.note and "10.5 ± 0.588" in t.note and "10 ± 0.784" in t.note
    assert not loss.passed and loss.half_width is None  # an exact number: no tolerance
    value["trace"]["estimate"] = 11.0  # 1.0 beyond the threshold > half-width 0.98
    assert not evaluate(rule[:1], value, base)[0].passed


def _trace_summary(samples: np.ndarray) -> dict:
    """A trace result as ``landscape trace`` records one: the mean, its standard error and the
    Student-t interval."""
    from landscape.intervals import t_interval

    i = t_interval(samples)
    return {"trace": {"estimate": i.mean, "stderr": i.stderr, "ci_low": i.low, "ci_high": i.high,
                      "confidence": 0.95}}


def test_a_rule_fails_exactly_outside_the_interval_its_command_printed():
    samples = np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # mean 3, se sqrt(2.5/5)
    summary = _trace_summary(samples)
    se = (2.5 / 5) ** 0.5
    inside = evaluate(parse_rules([f"trace.estimate <= {3 - 2.3 * se}"]), summary)[0]
    assert inside.passed and "inside" in inside.note  # 2.3 se: beyond z = 1.96, inside t_4
    assert inside.half_width == pytest.approx(2.7764 * se, rel=1e-4)  # t_{0.975, 4}
    outside = evaluate(parse_rules([f"trace.estimate <= {3 - 2.8 * se}"]), summary)[0]
    assert not outside.passed and "beyond" in outside.note


def test_false_alarms_on_an_unchanged_trace_stay_at_the_level():
    """A 5-probe trace whose true value equals the threshold fails a one-sided 95% rule 2.5% of
    the time (6.1% with the normal quantile); against a baseline of the same trace, no more."""
    rng = np.random.default_rng(0)
    trials, n, mu = 4000, 5, 10.0
    alone = parse_rules([f"trace.estimate <= {mu}"])
    paired = parse_rules(["trace.estimate <= 1.0 * baseline"])
    fails_alone = fails_paired = 0
    for _ in range(trials):
        value = _trace_summary(rng.normal(mu, 1.0, n))
        base = _trace_summary(rng.normal(mu, 1.0, n))
        fails_alone += not evaluate(alone, value)[0].passed
        fails_paired += not evaluate(paired, value, base)[0].passed
    sd = (0.025 * 0.975 / trials) ** 0.5
    print(f"false alarms: alone {fails_alone / trials:.4f}, paired {fails_paired / trials:.4f}")
    assert abs(fails_alone / trials - 0.025) < 4 * sd
    assert 0.002 < fails_paired / trials < 0.025 + 4 * sd


def test_holding_rule_exits_0_failing_rule_exits_1_with_reports(tmp_path, monkeypatch):
    from markdown_it import MarkdownIt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    ok = run_cli("check", DEMO, *FAST, "--rule", "inspect.accuracy >= 0.5", "-o", "ok.h5")
    assert ok.code == 0, ok.stderr
    assert "inspect.accuracy >= 0.5" in ok.stdout and "pass" in ok.stdout
    assert "::error" not in ok.stdout
    r = run_cli("check", DEMO, *FAST, "--rule", "inspect.accuracy >= 0.5", "--rule",
                "inspect.loss < 1e-6", "--rule", "inspect.grad_norm < 100", "--junit", "j.xml",
                "--markdown", "m.md", "-o", "res.h5")
    assert r.code == 1, r.stderr
    assert "FAIL" in r.stdout and "2 of 3 rules hold, 1 failed" in r.stdout
    assert "title=landscape check::inspect.loss < 1e-6: inspect.loss = " in r.stdout
    assert r.stdout.count("::error file=") == 1
    cases = ET.parse(tmp_path / "j.xml").getroot().iter("testcase")
    cases = list(cases)
    assert [c.get("name") for c in cases] == ["inspect.accuracy >= 0.5", "inspect.loss < 1e-6",
                                              "inspect.grad_norm < 100"]
    failing = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failing == ["inspect.loss < 1e-6"]
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    text = (tmp_path / "m.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<table>" in html and html.count("<tr>") == 4 and "<h2>landscape check</h2>" in html
    assert "1 of 3 rules failed" in html
    assert (tmp_path / "summary.md").read_text().count("## landscape check") == 2  # both runs
    j = run_cli("check", DEMO, *FAST, "--rule", "inspect.loss < 1e-6", "--json", "-o", "j.h5")
    assert j.code == 1 and j.json()["failed"] == 1 and j.json()["results"]["inspect"]["loss"] > 0


def test_bad_input_exits_2_naming_the_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rule, words in [("inspect.loss = 3", "malformed"), ("inspect.los < 3", "has no metric"),
                        ("nothing.x < 1", "unknown metric"),
                        ("inspect.loss < baseline", "baseline")]:
        r = run_cli("check", DEMO, *FAST, "--rule", rule)
        assert r.code == 2 and rule in r.stderr and words in r.stderr, r.stderr
    r = run_cli("check", DEMO, *FAST, "--rule", "lmc.barrier_loss < 1")
    assert r.code == 2 and "--against" in r.stderr
    assert run_cli("check", DEMO, *FAST, "--rule", "inspect.loss < 9", "-o", "b.h5").code == 0
    r = run_cli("check", DEMO, *FAST, "--rule", "trace.estimate < baseline", "--baseline", "b.h5")
    assert r.code == 2 and "the baseline has no metric 'trace.estimate'" in r.stderr
    r = run_cli("check", "--reuse", "b.h5", "--rule", "inspect.loss <= baseline", "--baseline",
                "b.h5", "-o", "r.h5")  # a check file is a baseline and a result to reuse
    assert r.code == 0, r.stderr
    import h5py

    with h5py.File("r.h5") as f:
        assert f.attrs["command"] == "check" and f.attrs["reuse"] == "b.h5"
        assert "inspect/loss" in f and "n_params" not in f


def _linear_checkpoints(tmp_path):
    """ckpt.pt on data.npz and scaled.pt on the same data with inputs x 2 (Hessian x 4)."""
    (tmp_path / "model.py").write_text(LINEAR_MODEL)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 24, generator=g) * torch.linspace(0.3, 2.0, 24)
    y = torch.randn(200, 4, generator=g)
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=y.numpy())
    np.savez(tmp_path / "data2.npz", x=2 * x.numpy(), y=y.numpy())
    torch.manual_seed(1)
    state = torch.nn.Linear(24, 4, bias=False).state_dict()
    for name, data in (("ckpt.pt", "data.npz"), ("scaled.pt", "data2.npz")):
        spec = {"model": "model.py:make", "data": data, "loss": "mse"}
        torch.save({"state_dict": state, "landscape": spec}, tmp_path / name)
    (tmp_path / "landscape.toml").write_text(
        '[check]\ntrace = {method = "hutchinson", probes = 24}\n')


def test_baseline_same_passes_scaled_fails_seeds_within_error_bars(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _linear_checkpoints(tmp_path)
    base = run_cli("check", "ckpt.pt", "--rule", "trace.estimate > 0", "-o", "base.h5", "--json")
    assert base.code == 0, base.stderr
    b = base.json()["results"]["trace"]
    assert b["method"] == "hutchinson" and b["matvecs"] == 24  # the [check] table's options
    rule = ["--rule", "trace.estimate <= 1.2 * baseline", "--baseline", "base.h5", "--json"]
    same = run_cli("check", "ckpt.pt", *rule, "-o", "same.h5")
    assert same.code == 0, same.stderr
    scaled = run_cli("check", "scaled.pt", *rule, "-o", "scaled.h5")
    assert scaled.code == 1, scaled.stderr
    out = scaled.json()["rules"][0]
    assert out["value"] == pytest.approx(4 * b["estimate"], rel=1e-4)
    assert out["stderr"] == pytest.approx(4 * b["stderr"], rel=1e-4)
    assert "beyond the combined 95% interval" in out["note"]
    print(f"trace rule: baseline {b['estimate']:.4g} ± {1.96 * b['stderr']:.2g}, scaled "
          f"{out['value']:.4g} ± {1.96 * out['stderr']:.2g} -> exit {scaled.code}")
    # another seed: a different estimate of the same trace, inside the error bars
    other = run_cli("check", "ckpt.pt", "--rule", "trace.estimate > 0", "--seed", "1", "-o",
                    "seed1.h5", "--json").json()["results"]["trace"]
    assert other["estimate"] != b["estimate"]
    hi, lo = ("seed1.h5", "base.h5")
    if other["estimate"] < b["estimate"]:
        hi, lo = lo, hi
    r = run_cli("check", "--reuse", hi, "--rule", "trace.estimate <= 1.0 * baseline",
                "--baseline", lo, "--json", "-o", "cmp.h5")
    o = r.json()["rules"][0]
    assert r.code == 0 and o["value"] > o["threshold"] and "inside" in o["note"], o
    print(f"seeds: {o['value']:.4g} vs baseline {o['baseline']:.4g}, half-width "
          f"{o['half_width']:.3g} -> exit {r.code}")
    import h5py

    with h5py.File("same.h5") as f:  # the check file holds the trace group: the next baseline
        assert f["trace/estimate"][()] == pytest.approx(b["estimate"])
        assert list(f["check/passed"][()]) == [True] and f.attrs["command"] == "check"
    assert json.loads(same.stdout)["passed"] is True


def test_each_needed_analysis_runs_once_with_table_options(tmp_path, monkeypatch):
    from landscape.analyses import suite

    monkeypatch.chdir(tmp_path)
    demo_b = DEMO.replace("demo_a", "demo_b")
    (tmp_path / "landscape.toml").write_text(
        "[check]\nlmc = {points = 5}\nsharpness = {top-k = 1, n-random = 0}\n")
    calls = []
    real = suite._one
    monkeypatch.setattr(suite, "_one", lambda name, *a: calls.append(name) or real(name, *a))
    r = run_cli("check", DEMO, *FAST, "--against", demo_b, "--lr", "0.01", "--json", "-o", "x.h5",
                "--rule", "lmc.barrier_loss < 10", "--rule", "lmc.barrier_loss_mean < 10",
                "--rule", "sharpness.eos_ratio < 1", "--rule", "sharpness.eigenvalues.0 > 0")
    assert r.code == 0, r.stderr
    assert calls == ["sharpness", "lmc"]  # each once, nothing else
    s = r.json()["results"]
    assert len(s["lmc"]["alpha"]) == 5 and len(s["sharpness"]["eigenvalues"]) == 1
    assert s["sharpness"]["eos_ratio"] == pytest.approx(s["sharpness"]["lambda_max"] * 0.01 / 2)
    calls.clear()
    two = run_cli("check", DEMO, demo_b, *FAST, "--rule", "inspect.accuracy > 0.5", "--junit",
                  "two.xml", "-o", "two.h5")
    assert two.code == 0 and calls == ["inspect", "inspect"], two.stderr
    cases = list(ET.parse("two.xml").getroot().iter("testcase"))
    assert [os.path.basename(c.get("file")) for c in cases] == ["demo_a.pt", "demo_b.pt"]
    import h5py

    with h5py.File("two.h5") as f:
        assert "inspect/loss" in f and "others/1/inspect/loss" in f
    (tmp_path / "landscape.toml").write_text("[check]\ntrace = {prob = 3}\n")
    bad = run_cli("check", DEMO, *FAST, "--rule", "trace.estimate < 1")
    assert bad.code == 2 and "trace has no option 'prob'" in bad.stderr


def test_rules_from_pyproject_tool_landscape_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.landscape]\nmax-samples = 32\n\n[tool.landscape.check]\n'
        'rules = ["inspect.accuracy >= 0.5", "inspect.loss < 1e-9"]\n')
    r = run_cli("check", DEMO, "--device", "cpu", "--json", "-o", "p.h5")
    assert r.code == 1, r.stderr
    out = r.json()
    assert [x["rule"] for x in out["rules"]] == ["inspect.accuracy >= 0.5", "inspect.loss < 1e-9"]
    assert out["results"]["n_samples"] == 32 and out["failed"] == 1
    r = run_cli("check", DEMO, "--device", "cpu", "--rule", "inspect.loss < 9", "-o", "p.h5")
    assert r.code == 0 and "inspect.accuracy" not in r.stdout  # --rule replaces the table's


def test_a_missing_metric_lists_the_nested_names_a_rule_can_use():
    """A rule on sharpness.eos_ratio (absent without an lr) named only the top level: the
    nested preconditioned.ratio, a user's likely next rule, was not among them."""
    from landscape.checks.rules import number

    summary = {"sharpness": {"lambda_max": 2.0, "attrs": {"curvature": "hessian"},
                             "preconditioned": {"ratio": 0.1, "lambda_max": 7.0},
                             "directional": {"update": 0.3}}}
    with pytest.raises(InputError) as e:
        number(summary, "sharpness.eos_ratio", "sharpness.eos_ratio < 1")
    assert str(e.value).endswith("(it has: directional.update, lambda_max, "
                                 "preconditioned.lambda_max, preconditioned.ratio)")
    assert number(summary, "sharpness.preconditioned.ratio", "r") == 0.1
