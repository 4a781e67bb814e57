"""``landscape surface`` end to end on the demo checkpoints (cut to a few samples to stay fast)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
from cli_helpers import run_cli

from landscape.analyses.surface_eval import PointEvaluator
from landscape_cli.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
B = os.path.join(ROOT, "data", "demo_b.pt")
FAST = ["--max-samples", "150", "--device", "cpu"]


def _surface(path) -> dict:
    """Every dataset and attribute of /surface."""
    with h5py.File(path) as f:
        g = f["surface"]
        out = {k: g[k][()] for k in g}
        out.update({f"@{k}": v for k, v in g.attrs.items()})
        assert all("description" in g[k].attrs for k in g)
    return out


def _same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=np.asarray(a[k]).dtype.kind == "f"), k


def test_2d_surface_file_json_plot_and_centre_equals_inspect(tmp_path):
    out, png = tmp_path / "s.h5", tmp_path / "s.png"
    run = run_cli("surface", A, *FAST, "--steps", "5,3", "--range", "1", "-o", out, "--plot",
                  png, "--json")  # fmt: skip
    assert run.code == 0, run.stderr
    s = _surface(out)
    assert s["loss"].shape == (5, 3) and s["accuracy"].shape == (5, 3) and s["done"].all()
    assert s["directions"].shape == (2, 2410)
    assert s["@kind"] == "random" and s["@norm"] == "filter" and s["@ignore"] == "biasbn"
    assert s["@seed"] == 0 and s["@bn"] == "keep"
    assert png.exists() and png.stat().st_size > 20_000
    ins = run_cli("inspect", A, *FAST, "--json", "-o", tmp_path / "i.h5").json()["inspect"]
    assert s["loss"][2, 1] == pytest.approx(ins["loss"], rel=1e-6)
    assert s["accuracy"][2, 1] == ins["accuracy"]
    one = run_cli("surface", A, *FAST, "--steps", "5,3", "--chunk", "1", "-o", tmp_path / "1.h5",
                  "--no-plot")  # fmt: skip
    assert one.code == 0 and _surface(tmp_path / "1.h5")["loss"][2, 1] == ins["loss"]


def test_line_through_two_checkpoints_equals_the_lmc_scan(tmp_path):
    common = [*FAST, "--dtype", "float64", "--no-plot", "--json"]
    lmc = run_cli("lmc", A, B, "--points", "5", "-o", tmp_path / "l.h5", *common).json()["lmc"]
    run = run_cli("surface", A, "--through", B, "--steps", "5", "--range", "0:1",
                  "-o", tmp_path / "s.h5", *common)  # fmt: skip
    assert run.code == 0, run.stderr
    s = _surface(tmp_path / "s.h5")
    assert s["@kind"] == "through" and s["@bn"] == "interpolate" and s["loss"].shape == (5,)
    assert np.allclose(s["x"], lmc["alpha"], rtol=0, atol=0)
    assert np.allclose(s["loss"], lmc["loss"], rtol=1e-12, atol=0)
    assert np.array_equal(s["accuracy"], lmc["accuracy"])


def test_interrupted_run_continues_to_the_same_file(tmp_path, monkeypatch):
    args = ["surface", A, *FAST, "--steps", "6,5", "--chunk", "3", "--no-plot"]
    assert run_cli(*args, "-o", tmp_path / "whole.h5").code == 0
    real = Progress.__call__

    def interrupt(self, done, total=None):
        if done >= 15:
            raise KeyboardInterrupt
        real(self, done, total)

    monkeypatch.setattr(Progress, "__call__", interrupt)
    part = tmp_path / "part.h5"
    stopped = run_cli(*args, "-o", part)
    assert stopped.code == 130 and "15 of 30 points are in" in stopped.stderr
    with h5py.File(part) as f:
        done = f["surface/done"][()]
        assert done.sum() == 15  # every finished point was kept
        assert np.isnan(f["surface/loss"][()][~done]).all()
    assert run_cli("plot", part, "-o", tmp_path / "part.png").code == 0  # blanks where not done
    monkeypatch.setattr(Progress, "__call__", real)
    again = run_cli(*args, "-o", part)
    assert again.code == 0 and "resumed: 15 of 30" in again.stdout
    _same(_surface(part), _surface(tmp_path / "whole.h5"))
    # finished: not recomputed, even with the evaluator gone
    monkeypatch.setattr(PointEvaluator, "evaluate", None)
    assert run_cli(*args, "-o", part).code == 0


def test_another_run_on_the_same_file_is_refused_unless_forced(tmp_path):
    out = tmp_path / "s.h5"
    base = ["surface", A, *FAST, "--steps", "3", "--no-plot", "-o", out]
    assert run_cli(*base).code == 0
    for change in (["--seed", "1"], ["--steps", "4"], ["--norm", "layer"], ["--dirs", "1"]):
        run = run_cli(*base, *change)
        assert run.code == 2 and "--force" in run.stderr and len(run.stderr.splitlines()) == 1
    forced = run_cli(*base, "--seed", "1", "--force")
    assert forced.code == 0 and _surface(out)["@seed"] == 1


def _third(tmp_path) -> str:
    """demo_a with every weight nudged: a third point off the line A-B."""
    import torch

    c = torch.load(A, weights_only=True)
    g = torch.Generator().manual_seed(0)
    c["state_dict"] = {k: v + 0.1 * torch.randn(v.shape, generator=g)
                       for k, v in c["state_dict"].items()}  # fmt: skip
    c["landscape"]["data"] = os.path.join(ROOT, "data", "digits.npz")
    path = str(tmp_path / "c.pt")
    torch.save(c, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("source", ["hessian", "trajectory", "through", "file"])
def test_other_direction_sources_and_redrawing(tmp_path, source):
    c = _third(tmp_path)
    extra = {"hessian": ["--dirs", "1", "--axes", "hessian", "--steps", "7"],
             "trajectory": ["--trajectory", f"{c},{B}", "--trajectory", A, "--steps", "4"],
             "through": ["--through", B, "--through", c, "--steps", "5"],
             "file": ["--dir-file", tmp_path / "first.h5", "--steps", "3"]}[source]  # fmt: skip
    if source == "file":
        assert run_cli("surface", A, *FAST, "--steps", "3", "-o", tmp_path / "first.h5",
                       "--no-plot").code == 0  # fmt: skip
    out, png = tmp_path / "s.h5", tmp_path / "s.png"
    run = run_cli("surface", A, *FAST, *extra, "-o", out, "--plot", png)
    assert run.code == 0, run.stderr
    assert png.exists()
    s = _surface(out)
    if source == "trajectory":
        assert s["trajectory"].shape == (3, 2) and np.allclose(s["trajectory"][-1], 0)
    if source == "through":  # the plane holds A, B and C at (0,0), (1,0), (0,1)
        assert list(s["x"]) == list(s["y"]) == [-0.5, 0, 0.5, 1, 1.5]
    if source == "file":
        assert np.array_equal(s["directions"], _surface(tmp_path / "first.h5")["directions"])
    redraw = run_cli("plot", out, "-o", tmp_path / "r.png", "--levels", "8", "--log",
                     "--vmax", "3")  # fmt: skip
    assert redraw.code == 0, redraw.stderr


def test_bad_inputs_exit_2_without_a_file(tmp_path):
    out = tmp_path / "s.h5"
    for bad in (["--steps", "3,3,3"], ["--range", "a:b"], ["--through", f"{B},{B},{B}"],
                ["--through", B, "--axes", "hessian"], ["--dir-file", "nope.npy"]):  # fmt: skip
        run = run_cli("surface", A, *FAST, *bad, "-o", out, "--no-plot")
        assert run.code == 2, (bad, run.stderr)
        assert not out.exists()
    lmc = run_cli("lmc", A, B, *FAST, "--points", "3", "-o", tmp_path / "l.h5", "--no-plot")
    assert lmc.code == 0
    assert run_cli("plot", tmp_path / "l.h5", "--levels", "5").code == 2


# The child saves after every block and SIGKILLs itself straight after its first partial save:
# the kill of a real process, with no finally and no atexit, at a moment that does not depend on
# how fast the machine is (a poll of the file from outside missed every partial save on a fast
# one, and the run had ended before the kill).
KILLED_AFTER_FIRST_SAVE = """
import functools, os, signal, sys
import landscape.analyses.surface as surface
import landscape.results as results
from landscape_cli.main import entry

save = results.update_result
def save_then_die(path, result, *args, **kwargs):
    save(path, result, *args, **kwargs)
    if 0 < result.done.sum() < result.done.size:
        os.kill(os.getpid(), signal.SIGKILL)
results.update_result = save_then_die
surface.surface = functools.partial(surface.surface, save_every=0.0)
entry()
"""


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_numbers(tmp_path):
    args = [A, *FAST, "--steps", "41,41", "--chunk", "4", "--no-plot"]
    cmd = [sys.executable, "-m", "landscape_cli.main", "surface", *args]
    assert subprocess.run([*cmd, "-o", tmp_path / "whole.h5"], capture_output=True).returncode == 0
    part = tmp_path / "part.h5"
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_SAVE, "surface", *args,
                             "-o", part], capture_output=True, timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    with h5py.File(part) as f:
        kept = int(f["surface/done"][()].sum())
    assert kept == 4, kept  # the first block of --chunk 4, and nothing after it
    resumed = subprocess.run([*cmd, "-o", part], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    _same(_surface(part), _surface(tmp_path / "whole.h5"))
