"""One meaning of "±" in every printed line: the half-width of a Student-t 95% interval."""

from __future__ import annotations

import os
import re

import pytest
from cli_helpers import run_cli
from scipy.stats import t as student_t

from landscape.intervals import t_interval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
B = os.path.join(ROOT, "data", "demo_b.pt")
SMALL = ["--max-samples", "64", "--device", "cpu", "--no-plot"]


def test_t_interval_matches_the_table():
    i = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert i.mean == 3.0 and i.stderr == pytest.approx((2.5 / 5) ** 0.5)
    assert i.half_width == pytest.approx(2.7764 * (2.5 / 5) ** 0.5, rel=1e-4)  # t_{0.975, 4}


def _plus_minus_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "±" in line]


def _check_convention(text: str) -> None:
    lines = _plus_minus_lines(text)
    assert lines
    for line in lines:
        for tail in line.split("±")[1:]:
            assert re.match(r" ?\S* ?\(95% CI\)", tail), line


def test_trace_prints_the_95_ci_half_width_and_names_it(tmp_path):
    args = ["trace", A, "--method", "hutchinson", "--probes", "8", "--per-layer", *SMALL]
    r = run_cli(*args, "-o", tmp_path / "t.h5")
    assert r.code == 0, r.stderr
    _check_convention(r.stdout)
    js = run_cli(*args, "-o", tmp_path / "t.h5", "--json").json()["trace"]
    half = js["ci_high"] - js["estimate"]
    assert half == pytest.approx(student_t.ppf(0.975, 7) * js["stderr"], rel=1e-9)
    assert f"± {half:.3g} (95% CI)" in r.stdout
    assert "s.e." in r.stdout and "(stderr)" not in r.stdout


def test_spectrum_prints_t_intervals_for_trace_and_negative_mass(tmp_path):
    args = ["spectrum", A, "--top-k", "1", "--slq-runs", "4", "--slq-steps", "10", *SMALL]
    r = run_cli(*args, "-o", tmp_path / "s.h5")
    assert r.code == 0, r.stderr
    _check_convention(r.stdout)
    spec = run_cli(*args, "-o", tmp_path / "s.h5", "--json").json()["spectrum"]
    half = spec["trace_ci_high"] - spec["trace"]
    assert half == pytest.approx(student_t.ppf(0.975, 3) * spec["trace_stderr"], rel=1e-9)
    assert spec["confidence"] == 0.95
    assert spec["negative_mass_ci_low"] <= spec["negative_mass"] <= spec["negative_mass_ci_high"]
    assert "negative mass" in r.stdout and "95% CI [" in r.stdout


def test_sharpness_labels_the_random_spread_as_a_std(tmp_path):
    args = ["sharpness", A, "--top-k", "1", "--random", "3", "--max-steps", "12", "--tol", "1e-3"]
    r = run_cli(*args, *SMALL, "-o", tmp_path / "s.h5")
    assert r.code == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("random"))
    assert "±" not in line and "std" in line and "across 3 directions" in line
