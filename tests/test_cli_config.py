"""Config files: misspelled keys and tables are refused by name; errors name the file."""

from __future__ import annotations

import os

import pytest
import torch
from cli_helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "data", "demo_a.pt")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _refused(*args: str) -> str:
    r = run_cli(*args)
    assert r.code == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not os.path.exists("demo_a_inspect.h5") and not os.path.exists("demo_a_spectrum.h5")
    return r.stderr


@pytest.mark.parametrize(
    "text, names",
    [
        ("topk = 3\n", ["'topk'", "'top-k'", "landscape.toml"]),
        ("[spectrm]\ntop-k = 3\n", ["[spectrm]", "'spectrum'"]),
        ("[spectrum]\ntop-kk = 3\n", ["'top-kk'", "'top-k'", "[spectrum]"]),
        ("[inspect]\ntop-k = 3\n", ["'top-k' is not an option of inspect"]),
    ],
)
def test_unknown_keys_and_tables_are_refused_with_the_closest_name(text, names):
    with open("landscape.toml", "w") as f:
        f.write(text)
    message = _refused("inspect", DEMO, "--max-samples", "16")
    for name in names:
        assert name in message


def test_config_flag_file_is_checked_and_named():
    with open("mine.toml", "w") as f:
        f.write("bach-size = 10\n")
    message = _refused("inspect", DEMO, "--config", "mine.toml")
    assert "mine.toml" in message and "'batch-size'" in message


def test_valid_keys_still_work():
    with open("landscape.toml", "w") as f:
        f.write('batch-size = 50\n[inspect]\nout = "c.h5"\nno_plot = true\n')
    assert run_cli("inspect", DEMO, "--max-samples", "16").code == 0
    assert os.path.exists("c.h5")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_error_from_a_config_value_names_the_file():
    with open("landscape.toml", "w") as f:
        f.write('device = "cuda"\n')
    message = _refused("inspect", DEMO)
    assert "--device cuda (from landscape.toml): CUDA is not available" in message
    # given on the command line, the same error does not blame the file
    r = run_cli("inspect", DEMO, "--device", "cuda")
    assert r.code == 2 and "from landscape.toml" not in r.stderr


def test_click_rejected_config_value_names_the_file():
    with open("landscape.toml", "w") as f:
        f.write("[spectrum]\ntop-k = 0\n")
    message = _refused("spectrum", DEMO)
    assert "top-k" in message and "(from landscape.toml)" in message
