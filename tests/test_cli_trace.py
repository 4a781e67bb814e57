"""``landscape trace`` end to end on the demo checkpoint (a small slice of its data)."""

import os

import h5py
import pytest
import torch
from cli_helpers import run_cli

from landscape.results import read_result

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo_a.pt")
FAST = ["--max-samples", "64", "--device", "cpu"]


def test_json_file_plot_and_show_round_trip(tmp_path):
    out, png = tmp_path / "t.h5", tmp_path / "t.png"
    r = run_cli(
        "trace",
        DEMO,
        *FAST,
        "--probes",
        "20",
        "--per-layer",
        "--diagonal",
        "--json",
        "-o",
        out,
        "--plot",
        png,
    )
    assert r.code == 0, r.stderr
    s = r.json()
    t = s["trace"]
    assert t["method"] == "xtrace" and t["stopped"] == "probes" and t["matvecs"] == 20
    assert t["ci_low"] < t["estimate"] < t["ci_high"] and t["stderr"] > 0
    assert set(t["history"]) == {"matvecs", "estimate", "half_width"}
    assert set(s["blocks"]) == {"layers.0", "layers.2"}
    assert t["per_layer"]["names"] == ["layers.0", "layers.2"]
    assert s["matvecs"] == 20 + 2 * 20 + 20  # whole, two layers, the diagonal
    assert png.exists() and png.stat().st_size > 10_000
    with h5py.File(out) as f:
        assert f["trace"].attrs["matvecs"] == 20 and f.attrs["matvecs"] == 80
        assert f["trace/diagonal"].shape == (2410,)
        assert f["blocks/layers.0/trace/estimate"][()] == pytest.approx(
            s["blocks"]["layers.0"]["trace"]["estimate"]
        )
        assert "description" in f["trace/estimate"].attrs
    shown = run_cli("show", out, "--json")
    assert shown.code == 0 and shown.json()["trace"] == t
    assert read_result(str(out))["command"] == "trace"
    plotted = tmp_path / "again.png"
    assert run_cli("plot", out, "-o", plotted).code == 0 and plotted.exists()


def test_human_output_says_why_it_stopped(tmp_path):
    common = [*FAST, "-o", tmp_path / "t.h5", "--no-plot", "--method", "hutchinson"]
    r = run_cli("trace", DEMO, *common, "--rtol", "1e-6", "--max-matvecs", "40")
    assert r.code == 0, r.stderr
    assert "stopped on the budget: 40 matvecs" in r.stdout
    r = run_cli("trace", DEMO, *common, "--probes", "10")
    assert r.code == 0 and "fixed budget of 10 matvecs" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--method", "power"],
        ["--probes", "0"],
        ["--probes", "4"],  # xtrace needs at least 6
        ["--rtol", "0"],
        ["--rtol", "-0.1"],
        ["--confidence", "1.5"],
        ["--max-matvecs", "3"],
        ["--curvature", "hessain"],
        ["--chunk", "0"],
    ],
)
def test_bad_values_exit_2(tmp_path, args):
    r = run_cli("trace", DEMO, *FAST, "--no-plot", "-o", tmp_path / "t.h5", *args)
    assert r.code == 2, (r.code, r.stderr)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "t.h5").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(tmp_path):
    r = run_cli(
        "trace",
        DEMO,
        "--max-samples",
        "64",
        "--device",
        "cuda",
        "--probes",
        "20",
        "--per-layer",
        "--json",
        "-o",
        tmp_path / "t.h5",
        "--no-plot",
    )
    assert r.code == 0, r.stderr
    assert r.json()["trace"]["matvecs"] == 20
