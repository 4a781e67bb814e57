"""What the figures show: the checkpoint's name, labelled axes, the trace's interval, the floor."""

from __future__ import annotations

import os

import matplotlib
import pytest
from cli_helpers import run_cli

from landscape.plots import draw
from landscape.results import read_result

matplotlib.use("Agg")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
SMALL = ["--max-samples", "64", "--device", "cpu", "--no-plot"]


def _figure(path, monkeypatch, tmp_path):
    """Draw the result file ``path`` and return the figure (kept open for inspection)."""
    import matplotlib.pyplot as plt

    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    draw(read_result(str(path)), str(tmp_path / "fig.png"))
    assert kept and (tmp_path / "fig.png").stat().st_size > 10_000
    return kept[0]


def _texts(fig) -> str:
    parts = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        parts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        legend = ax.get_legend()
        if legend is not None:
            parts += [t.get_text() for t in legend.get_texts()]
    return "\n".join(parts)


def _run(tmp_path, *args) -> str:
    out = tmp_path / "r.h5"
    r = run_cli(*args, *SMALL, "-o", out)
    assert r.code == 0, r.stderr
    return out


def test_spectrum_no_density_per_layer_labels(tmp_path, monkeypatch):
    out = _run(tmp_path, "spectrum", A, "--top-k", "2", "--no-density", "--per-layer")
    fig = _figure(out, monkeypatch, tmp_path)
    assert "demo_a.pt" in fig.axes[0].get_title()
    for ax in fig.axes:  # the whole model and each block
        assert ax.get_xlabel() == "eigenvalue"
        assert ax.get_ylabel() and "density" not in ax.get_ylabel()
    assert "density" not in _texts(fig).replace("no density", "")
    lo, hi = fig.axes[0].get_xlim()
    eig = read_result(str(out))["spectrum"]["eigenvalues"]
    assert lo <= min(0, eig.min()) and max(eig) <= hi < 2 * max(eig)  # not the 0..1 default


def test_spectrum_density_marks_its_floor_and_blocks_have_labels(tmp_path, monkeypatch):
    args = ["--top-k", "2", "--slq-runs", "2", "--slq-steps", "20", "--per-layer"]
    out = _run(tmp_path, "spectrum", A, *args)
    fig = _figure(out, monkeypatch, tmp_path)
    text = _texts(fig)
    assert "not resolved, clipped" in text and "one eigenvalue" in text
    for ax in fig.axes:
        assert ax.get_xlabel() == "eigenvalue" and "density" in ax.get_ylabel()
    assert "demo_a.pt" in fig.axes[0].get_title() and "95% CI" in fig.axes[0].get_title()


def test_default_trace_plot_shows_the_samples_and_the_interval(tmp_path, monkeypatch):
    out = _run(tmp_path, "trace", A)  # xtrace, one run of 100 matvecs: a single history row
    content = read_result(str(out))
    t = content["trace"]
    fig = _figure(out, monkeypatch, tmp_path)
    ax = fig.axes[0]
    assert "demo_a.pt" in fig._suptitle.get_text()
    points = [line for line in ax.get_lines() if len(line.get_xdata()) > 1]
    assert points and len(points[0].get_xdata()) == t["samples"].size
    lo, hi = ax.get_ylim()
    assert lo <= t["ci_low"] and t["ci_high"] <= hi
    assert "95% CI" in _texts(fig) and "96" not in [x.get_text() for x in ax.get_xticklabels()]


@pytest.mark.parametrize("command", ["sharpness", "ghost"])
def test_titles_name_the_checkpoint(tmp_path, monkeypatch, command):
    extra = ["--top-k", "1", "--max-steps", "12", "--tol", "1e-3"] if command == "sharpness" else []
    out = _run(tmp_path, command, A, *extra)
    fig = _figure(out, monkeypatch, tmp_path)
    assert "demo_a.pt" in fig._suptitle.get_text()
