"""The front door: landscape.open against a Problem built by hand, precedence, relative paths,
a second checkpoint in the first one's architecture; and the README's library example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import landscape as ls
from landscape.errors import InputError
from landscape.loading.zoo import mlp
from landscape.steps import ghost_direction, next_delta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_A = os.path.join(ROOT, "data", "demo_a.pt")
DEMO_B = os.path.join(ROOT, "data", "demo_b.pt")


def _by_hand(path: str) -> ls.Problem:
    """The demo checkpoint opened without the front door: its spec read and followed by hand."""
    ck = torch.load(path, weights_only=True)
    spec = ck["landscape"]
    model = mlp(**spec["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    with np.load(os.path.join(ROOT, "data", spec["data"])) as f:
        x, y = torch.from_numpy(f["x"]).float(), torch.from_numpy(f["y"]).long()
    return ls.Problem(model, x, y, loss=spec["loss"], dtype=torch.float64)


def test_open_equals_a_problem_built_by_hand():
    opened = ls.open(DEMO_A, dtype="float64")
    hand = _by_hand(DEMO_A)
    assert opened.origin.model_spec == "mlp" and opened.origin.data_spec.endswith("digits.npz")
    assert opened.loss() == hand.loss() and torch.equal(opened.theta, hand.theta)


def test_arguments_beat_the_checkpoints_own_spec():
    hand = _by_hand(DEMO_A)
    x, y = torch.randn(40, 64, dtype=torch.float64), torch.randint(0, 10, (40,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = mlp(**torch.load(DEMO_A, weights_only=True)["landscape"]["model_kwargs"])
    p = ls.open(DEMO_A, model=model, data=loader, loss="cross-entropy", dtype=torch.float64)
    assert p.origin.model_spec.endswith("(given)") and p.origin.data_spec == "DataLoader"
    ref = ls.Problem(hand.model, x, y, batch_size=40, dtype=torch.float64)
    assert p.loss() == pytest.approx(ref.loss(), abs=1e-14)
    with pytest.raises(InputError, match="`loss` 'hinge'"):
        ls.open(DEMO_A, loss="hinge")


def test_relative_paths_resolve_next_to_the_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run1"
    run.mkdir()
    shutil.copy(DEMO_A, run / "a.pt")
    shutil.copy(os.path.join(ROOT, "data", "digits.npz"), run / "digits.npz")
    monkeypatch.chdir(tmp_path)  # not where the data is
    p = ls.open("run1/a.pt", dtype="float64")
    assert p.loss() == _by_hand(DEMO_A).loss()


def test_a_second_checkpoint_loads_into_the_first_ones_architecture(tmp_path):
    a = ls.open(DEMO_A, dtype="float64")
    b_state = torch.load(DEMO_B, weights_only=True)["state_dict"]
    delta = next_delta(a, DEMO_B)
    expected = a.flatten({k: v.double() for k, v in b_state.items()}) - a.theta
    torch.testing.assert_close(delta, expected, rtol=0, atol=0)
    assert [c["path"] for c in a.origin.checkpoints] == [DEMO_A, DEMO_B]
    other = tmp_path / "wide.pt"
    torch.save(mlp(in_dim=64, hidden=[8], out_dim=10).state_dict(), other)
    with pytest.raises(InputError, match="does not fit the architecture of"):
        ls.weights_like(a, str(other))


def test_ghost_directions_say_descent_and_refuse_unknown_choices():
    p = ls.open(DEMO_A, dtype="float64")
    d = ghost_direction(p, "gradient", lr=0.1)
    _, g = p.loss_and_grad()
    torch.testing.assert_close(d.vector, -g)
    assert d.label.startswith("-gradient") and d.tau == pytest.approx(0.1 * float(g.norm()))
    with pytest.raises(InputError, match="`direction` 'sideways'"):
        ghost_direction(p, "sideways")


def test_library_errors_name_parameters_and_the_cli_names_flags():
    from landscape_cli.flags import flagify

    with pytest.raises(InputError, match="`batch_size` must be positive") as e:
        ls.Problem(mlp(), torch.randn(4, 64), torch.zeros(4, dtype=torch.long), batch_size=0)
    assert flagify(str(e.value)).startswith("--batch-size must be positive")
    assert flagify("pass `trust` only if") == "pass --trust-checkpoint only if"
    # a library's own message quoted in ours keeps its words: torch's unpickling error read
    # "... from --False to --True", transformers' `trust_remote_code=True` is not our flag
    quoted = "changed `weights_only` from `False` to `True`; set `trust_remote_code=True`"
    assert flagify(quoted) == quoted
    assert flagify("`use_optimizer=False` or `optimizer` sgd") == "--no-adam or --optimizer sgd"


def test_the_readme_library_example_runs(tmp_path):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Python library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    run = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].split()[1] == "mlp"
