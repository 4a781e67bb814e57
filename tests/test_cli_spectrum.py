"""``landscape spectrum`` end to end on the demo checkpoint: files, JSON, show/plot round trip."""

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import run_cli

DEMO = str(Path(__file__).resolve().parents[1] / "data" / "demo_a.pt")
FAST = ["--max-samples", "200", "--slq-runs", "3", "--slq-steps", "15", "--top-k", "2"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("spectrum")
    out, png = d / "demo.h5", d / "demo.png"
    r = run_cli("spectrum", DEMO, *FAST, "--json", "-o", out, "--plot", png)
    return r, out, png, d


def test_json_run_writes_file_plot_and_provenance(demo_run):
    r, out, png, _ = demo_run
    assert r.code == 0, r.stderr
    js = r.json()
    assert js["matvecs"] > 0 and js["n_params"] == 2410
    spec = js["spectrum"]
    assert len(spec["eigenvalues"]) == 2 and spec["eigenvalues"][0] >= spec["eigenvalues"][1]
    assert spec["lambda_max"] == spec["eigenvalues"][0] and spec["converged"] is True
    assert png.exists() and png.stat().st_size > 10_000
    with h5py.File(out) as f:
        assert f.attrs["command"] == "spectrum" and f.attrs["matvecs"] == js["matvecs"]
        assert f.attrs["curvature"] == "hessian" and f.attrs["n_samples"] == 200
        assert "sha256" in f["checkpoints/0"].attrs
        assert f["density/nodes"].shape == (3, 15) and f["density/weights"].shape == (3, 15)
        grid, values = f["density/grid"][()], f["density/values"][()]
        assert np.sum((values[1:] + values[:-1]) / 2 * np.diff(grid)) == pytest.approx(1.0)
        assert f["density"].attrs["sigma"] > 0
        assert "description" in f["spectrum/eigenvalues"].attrs


def test_show_and_plot_round_trip(demo_run):
    r, out, _, d = demo_run
    shown = run_cli("show", out, "--json")
    assert shown.code == 0
    assert shown.json()["spectrum"] == r.json()["spectrum"]
    again = d / "again.png"
    drawn = run_cli("plot", out, "-o", again)
    assert drawn.code == 0 and again.exists() and again.stat().st_size > 10_000
    text = run_cli("show", out)
    assert "spectrum.lambda_max" in text.stdout


def test_per_layer_eigenvectors_and_default_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--per-layer", "--save-eigenvectors", "--no-density", "--dtype", "float64"]
    r = run_cli("spectrum", DEMO, *FAST, *args)
    assert r.code == 0, r.stderr
    assert "lambda_max" in r.stdout and "layers.0" in r.stdout
    assert os.path.exists("demo_a_spectrum.h5") and os.path.exists("demo_a_spectrum.png")
    with h5py.File("demo_a_spectrum.h5") as f:
        assert set(f["blocks"]) == {"layers.0", "layers.2"}
        assert "density" not in f
        vec = f["spectrum/eigenvectors"][()]
        assert vec.shape == (2, 2410)
        assert np.allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-8)
        assert f["blocks/layers.2/spectrum/eigenvectors"].shape == (2, 32 * 10 + 10)
        top = f["spectrum/lambda_max"][()]
        assert all(
            f[f"blocks/{b}/spectrum/lambda_max"][()] <= top * (1 + 1e-6) for b in f["blocks"]
        )


@pytest.mark.parametrize(
    "bad",
    [
        ["--which", "sideways"],
        ["--top-k", "0"],
        ["--tol", "-1"],
        ["--curvature", "hessain"],
        ["--solver", "arnoldi"],
        ["--slq-runs", "0"],
        ["--sigma", "0"],
        ["--chunk", "0"],
    ],
)
def test_bad_option_values_exit_2(bad, tmp_path):
    out = tmp_path / "x.h5"
    r = run_cli("spectrum", DEMO, *bad, "-o", out)
    assert r.code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cupy_solver_without_cuda_exits_2(tmp_path):
    r = run_cli("spectrum", DEMO, *FAST, "--solver", "cupy", "-o", tmp_path / "x.h5")
    assert r.code == 2 and "cupy" in r.stderr.lower()


def test_no_density_reports_no_lambda_min_anywhere(tmp_path):
    out = tmp_path / "nd.h5"
    r = run_cli("spectrum", DEMO, *FAST, "--no-density", "--json", "-o", out, "--no-plot")
    assert r.code == 0, r.stderr
    spec = r.json()["spectrum"]
    assert "lambda_min" not in spec and "ratio" not in spec
    with h5py.File(out) as f:
        assert "lambda_min" not in f["spectrum"] and "ratio" not in f["spectrum"]
        assert f["spectrum"].attrs["lambda_min_from"] == "none"
    text = run_cli("spectrum", DEMO, *FAST, "--no-density", "-o", out, "--no-plot")
    assert "lambda_min not estimated" in text.stdout and "min/max" not in text.stdout


def test_top_k_above_p_is_exact_on_the_cli(tmp_path):
    # layers.2 alone: 330 parameters, so --top-k 400 asks for more than there are
    args = ["--params", "layers.2", "--top-k", "400", "--no-density", "--dtype", "float64"]
    r = run_cli("spectrum", DEMO, "--max-samples", "200", *args, "--json", "--no-plot",
                "-o", tmp_path / "x.h5")
    assert r.code == 0, r.stderr
    spec = r.json()["spectrum"]
    assert spec["solver"] == "dense" and spec["lambda_min_from"] == "dense eigh (exact)"
    assert spec["n_params"] == 330 and spec["matvecs"] == 330
    assert spec["lambda_min"] <= spec["lambda_max"]
