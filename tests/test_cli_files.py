"""Result files as a colleague meets them: permissions, names, foreign HDF5, described datasets."""

from __future__ import annotations

import os
import stat

import h5py
import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = os.path.join(ROOT, "data", "demo_a.pt")
B = os.path.join(ROOT, "data", "demo_b.pt")
SMALL = ["--max-samples", "64", "--device", "cpu", "--no-plot"]

# every command that writes a result, with settings small enough to run in seconds
RUNS = {
    "inspect": ["inspect", A],
    "spectrum": ["spectrum", A, "--top-k", "2", "--slq-runs", "2", "--slq-steps", "10",
                 "--per-layer"],
    "trace": ["trace", A, "--method", "hutchinson", "--probes", "8", "--per-layer",
              "--diagonal"],
    "sharpness": ["sharpness", A, B, "--top-k", "1", "--random", "2", "--max-steps", "12",
                  "--tol", "1e-3", "--lr", "0.01"],
    "ghost": ["ghost", A, B, "--quantile", "0.9"],
    "lmc": ["lmc", A, B, "--points", "3"],
}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_result_file_gets_the_umask_permissions(tmp_path, umask_022):
    out = tmp_path / "r.h5"
    assert run_cli(*RUNS["inspect"], *SMALL, "-o", out).code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # as open() would make it, not 0600
    os.umask(0o077)
    private = tmp_path / "p.h5"
    assert run_cli(*RUNS["inspect"], *SMALL, "-o", private).code == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


@pytest.mark.parametrize("name", ["result.txt", "result", "result.h5.png"])
def test_result_name_must_end_in_h5(tmp_path, name):
    out = tmp_path / name
    r = run_cli(*RUNS["inspect"], *SMALL, "-o", out)
    assert r.code == 2 and ".h5" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_hdf5_suffix_is_accepted(tmp_path):
    assert run_cli(*RUNS["inspect"], *SMALL, "-o", tmp_path / "r.hdf5").code == 0


@pytest.mark.parametrize("command", ["show", "plot"])
def test_show_refuses_hdf5_that_landscape_did_not_write(tmp_path, command):
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    r = run_cli(command, foreign)
    assert r.code == 2 and "not a landscape result" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


def _datasets(group: h5py.Group):
    for item in group.values():
        if isinstance(item, h5py.Dataset):
            yield item
        else:
            yield from _datasets(item)


@pytest.mark.parametrize("command", list(RUNS))
def test_every_dataset_of_every_command_is_described(tmp_path, command):
    out = tmp_path / f"{command}.h5"
    r = run_cli(*RUNS[command], *SMALL, "-o", out)
    assert r.code == 0, r.stderr
    with h5py.File(out) as f:
        found = list(_datasets(f))
        missing = [d.name for d in found if not str(d.attrs.get("description", "")).strip()]
    assert found and not missing, f"{command}: no description on {missing}"
