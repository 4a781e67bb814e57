"""The CLI frame: provenance, JSON round-trip, config discovery and the exit-status contract."""

from __future__ import annotations

import os
import pickle
import random
import shutil

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from landscape.loading.checkpoints import file_sha256
from landscape.loading.zoo import mlp

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
DEMO = os.path.abspath(os.path.join(DATA, "demo_a.pt"))
PROVENANCE = [
    "landscape_version",
    "command",
    "argv",
    "created",
    "seed",
    "device",
    "dtype",
    "torch_version",
    "curvature",
    "loss",
    "model",
    "data",
    "n_samples",
    "n_params",
    "wall_seconds",
    "matvecs",
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _demo_loss() -> tuple[float, float]:
    """The demo model's loss and accuracy on its data, computed without landscape."""
    ck = torch.load(DEMO, weights_only=True)
    model = mlp(**ck["landscape"]["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    d = np.load(os.path.join(DATA, "digits.npz"))
    x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
    with torch.no_grad():
        out = model(x)
    acc = (out.argmax(1) == y).float().mean().item()
    return torch.nn.functional.cross_entropy(out, y).item(), acc


def test_inspect_writes_provenance_and_true_numbers():
    r = run_cli("inspect", DEMO, "--json", "--batch-size", "100")
    assert r.code == 0, r.stderr
    summary = r.json()
    loss, acc = _demo_loss()
    assert summary["inspect"]["loss"] == pytest.approx(loss, rel=1e-5)
    assert summary["inspect"]["accuracy"] == pytest.approx(acc, abs=1e-9)
    with h5py.File("demo_a_inspect.h5") as f:
        for key in PROVENANCE:
            assert key in f.attrs, key
        assert f.attrs["n_samples"] == 1797 and f.attrs["n_params"] == 2410
        ck = f["checkpoints/0"].attrs
        assert ck["sha256"] == file_sha256(DEMO)
        assert ck["format"] == "self-describing"
    shown = run_cli("show", "demo_a_inspect.h5", "--json")
    assert shown.code == 0
    assert shown.json() == summary


def test_show_prints_human_summary():
    assert run_cli("inspect", DEMO, "-o", "x.h5").code == 0
    r = run_cli("show", "x.h5")
    assert r.code == 0 and "inspect.loss" in r.stdout and "n_params: 2410" in r.stdout


def _exit2(*args: str, names: str) -> None:
    r = run_cli(*args)
    assert r.code == 2, (r.code, r.stderr)
    assert "Traceback" not in r.stderr
    assert names in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not [f for f in os.listdir(".") if f.endswith(".h5")]


def test_bad_files_exit_2_with_one_line(tmp_path):
    _exit2("inspect", "missing.pt", names="missing.pt")
    (tmp_path / "random.pt").write_bytes(random.Random(1).randbytes(2000))
    _exit2("inspect", "random.pt", names="random.pt")
    data = open(DEMO, "rb").read()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    _exit2("inspect", "truncated.pt", names="truncated.pt")
    os.mkdir("adir")
    _exit2("inspect", "adir", names="adir")


class _Evil:
    def __reduce__(self):
        return (open, ("pwned.txt", "w"))


def test_malicious_pickle_runs_no_code():
    with open("evil.pt", "wb") as f:
        pickle.dump({"w": _Evil()}, f)
    _exit2("inspect", "evil.pt", names="evil.pt")
    assert not os.path.exists("pwned.txt")


def test_model_mismatches_are_named():
    _exit2("inspect", DEMO, "--model-kwargs", '{"hidden": [16]}', names="layers.0.weight")
    _exit2("inspect", DEMO, "--model", "no_such_module_xyz:make", names="no_such_module_xyz")
    _exit2("inspect", DEMO, "--model", "resnet", names="missing")
    _exit2("inspect", DEMO, "--model-kwargs", "{not json", names="JSON")


def test_non_finite_weights_are_named():
    ck = torch.load(DEMO, weights_only=True)
    ck["state_dict"]["layers.2.bias"][3] = float("nan")
    torch.save(ck, "nan.pt")
    shutil.copy(os.path.join(DATA, "digits.npz"), "digits.npz")
    _exit2("inspect", "nan.pt", names="layers.2.bias")


def test_bad_data_exit_2():
    np.savez("empty.npz", x=np.zeros((0, 64), np.float32), y=np.zeros(0, np.int64))
    _exit2("inspect", DEMO, "--data", "empty.npz", names="empty")
    np.savez("nox.npz", inputs=np.zeros((3, 64), np.float32), y=np.zeros(3, np.int64))
    _exit2("inspect", DEMO, "--data", "nox.npz", names="x")
    np.savez("wrong.npz", x=np.zeros((3, 7), np.float32), y=np.zeros(3, np.int64))
    _exit2("inspect", DEMO, "--data", "wrong.npz", names="does not run")


def test_usage_errors_exit_2():
    _exit2("inspect", DEMO, "--batch-size", "0", names="batch-size")
    _exit2("inspect", DEMO, "--device", "tpu:9", names="tpu")
    if not torch.cuda.is_available():
        _exit2("inspect", DEMO, "--device", "cuda", names="CUDA")
    _exit2("inspect", DEMO, "--params", "no_such_layer", names="no_such_layer")


def test_config_files_set_defaults_and_flags_win(tmp_path):
    (tmp_path / "landscape.toml").write_text('[inspect]\nout = "from_config.h5"\n')
    assert run_cli("inspect", DEMO).code == 0
    assert os.path.exists("from_config.h5")
    (tmp_path / "other.toml").write_text('out = "from_flag_config.h5"\nbatch-size = 50\n')
    assert run_cli("inspect", DEMO, "--config", "other.toml").code == 0
    assert os.path.exists("from_flag_config.h5")
    assert run_cli("inspect", DEMO, "--config", "other.toml", "-o", "flag.h5").code == 0
    assert os.path.exists("flag.h5")


def test_bad_config_exit_2(tmp_path):
    (tmp_path / "bad.toml").write_text("this is = = not toml")
    _exit2("inspect", DEMO, "--config", "bad.toml", names="bad.toml")


def test_own_model_file_and_data_file():
    r = run_cli(
        "inspect",
        DEMO,
        "--model",
        os.path.join(DATA, "tiny_model.py") + ":make",
        "--model-kwargs",
        '{"hidden": 32}',
        "--data",
        os.path.join(DATA, "digits.npz"),
        "--json",
    )
    assert r.code == 0, r.stderr
    assert r.json()["inspect"]["loss"] == pytest.approx(_demo_loss()[0], rel=1e-5)
