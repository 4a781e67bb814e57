"""Default output names never replace another run's result silently; -o still overwrites."""

from __future__ import annotations

import os
import shutil

import h5py
import pytest
from cli_helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
B = os.path.join(ROOT, "data", "demo_b.pt")
SMALL = ["--max-samples", "64", "--device", "cpu"]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """run1/model.pt (demo A) and run2/model.pt (demo B), their data in the working directory."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(os.path.join(ROOT, "data", "digits.npz"), tmp_path)
    for run, src in (("run1", A), ("run2", B)):
        (tmp_path / run).mkdir()
        shutil.copy(src, tmp_path / run / "model.pt")
        shutil.copy(A, tmp_path / run / "a.pt")
        shutil.copy(src, tmp_path / run / "b.pt")
    return tmp_path


def _shas(path: str) -> list[str]:
    with h5py.File(path) as f:
        group = f["checkpoints"]
        return [group[k].attrs["sha256"] for k in sorted(group, key=int)]


def test_same_default_name_of_another_checkpoint_gets_a_number(runs) -> None:
    first = run_cli("inspect", "run1/model.pt", *SMALL)
    assert first.code == 0 and "wrote model_inspect.h5" in first.stderr
    second = run_cli("inspect", "run2/model.pt", *SMALL)
    assert second.code == 0, second.stderr
    assert "model_inspect.h5 holds a result of other checkpoints" in second.stderr
    assert "wrote model_inspect-2.h5" in second.stderr
    assert _shas("model_inspect.h5") != _shas("model_inspect-2.h5")
    again = run_cli("inspect", "run1/model.pt", *SMALL)  # its own result: replaced, no -3
    assert "wrote model_inspect.h5" in again.stderr and not os.path.exists("model_inspect-3.h5")
    again = run_cli("inspect", "run2/model.pt", *SMALL)
    assert "wrote model_inspect-2.h5" in again.stderr and not os.path.exists("model_inspect-3.h5")


def test_explicit_out_overwrites_as_before(runs) -> None:
    assert run_cli("inspect", "run1/model.pt", *SMALL, "-o", "r.h5").code == 0
    before = _shas("r.h5")
    assert run_cli("inspect", "run2/model.pt", *SMALL, "-o", "r.h5").code == 0
    assert _shas("r.h5") != before and not os.path.exists("r-2.h5")


def test_lmc_default_name_has_both_checkpoints_and_its_plot_follows_the_number(runs) -> None:
    done = run_cli("lmc", "run1/a.pt", "run1/b.pt", "--points", "3", *SMALL)
    assert done.code == 0, done.stderr
    assert "wrote a_b_lmc.h5 and a_b_lmc.png" in done.stderr
    other = run_cli("lmc", "run1/a.pt", "run1/model.pt", "--points", "3", *SMALL)
    assert "wrote a_model_lmc.h5" in other.stderr
    clash = run_cli("lmc", "run2/a.pt", "run2/b.pt", "--points", "3", *SMALL)
    assert "wrote a_b_lmc-2.h5 and a_b_lmc-2.png" in clash.stderr
    assert os.path.exists("a_b_lmc-2.png") and not os.path.exists("a_lmc.h5")
    assert not [p for p in os.listdir(".") if ".tmp" in p]


def test_inspect_draws_its_plot_only_when_asked(runs) -> None:
    done = run_cli("inspect", "run1/model.pt", *SMALL, "--plot", "norms.png")
    assert done.code == 0, done.stderr
    assert "wrote model_inspect.h5 and norms.png" in done.stderr
    with open("norms.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    plain = run_cli("inspect", "run2/model.pt", *SMALL)
    assert plain.code == 0 and not [p for p in os.listdir(".") if p.endswith(".png")][1:]
