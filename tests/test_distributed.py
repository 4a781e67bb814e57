"""Two Gloo processes on the CPU, launched by torchrun, give what one process gives; a rank that
fails ends every rank quickly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from cli_helpers import run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_A = os.path.join(ROOT, "data", "demo_a.pt")
DEMO_B = os.path.join(ROOT, "data", "demo_b.pt")
# 1797 digits in batches of 700: rank 0 reads batches 0 and 2 (1097 samples), rank 1 batch 1
COMMON = ["--batch-size", "700", "--dtype", "float64", "--no-plot", "--json"]
COMMANDS = {
    "inspect": ["inspect", DEMO_A, *COMMON],
    "spectrum": ["spectrum", DEMO_A, "--top-k", "3", "--no-density", *COMMON],
    "trace": ["trace", DEMO_A, "--method", "hutchinson", "--max-matvecs", "30", "--seed", "3",
              *COMMON],
    "lmc": ["lmc", DEMO_A, DEMO_B, "--points", "5", *COMMON],
    "ghost": ["ghost", DEMO_A, "--direction", "gradient", "--lr", "0.1", *COMMON],
    "sharpness": ["sharpness", DEMO_A, DEMO_B, "--top-k", "2", "--random", "2", *COMMON],
    "surface": ["surface", DEMO_A, "--steps", "3,3", "--chunk", "1", *COMMON],
}

SCRIPT = """
import contextlib, io, json, os, sys
from landscape_cli.main import main

out_dir, commands = sys.argv[1], json.loads(sys.argv[2])
rank = int(os.environ["RANK"])
for name, args in commands.items():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(args + ["-o", os.path.join(out_dir, f"{name}_{rank}.h5")])
    assert code == 0, (name, code)
    if rank == 0:
        open(os.path.join(out_dir, name + ".json"), "w").write(buf.getvalue())
    else:
        assert buf.getvalue() == "", "only rank 0 prints"
"""


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "--monitor-interval", "0.5", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _close(a, b, path: str = "") -> None:
    """Equal numbers to round-off, recursing through the summary."""
    if isinstance(a, dict):
        for k in a:
            if k not in ("wall_seconds", "argv", "created", "world_size", "probe_block"):
                _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) or (isinstance(a, list) and all(
        isinstance(v, (int, float)) or isinstance(v, list) for v in a
    )):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9,
                                   atol=1e-12, err_msg=path)
    else:
        assert a == b, path


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    run = _torchrun(str(script), str(tmp_path), json.dumps(COMMANDS))
    assert run.returncode == 0, run.stderr[-3000:]
    assert not list(tmp_path.glob("*_1.h5")), "only rank 0 writes files"
    for name, args in COMMANDS.items():
        one = run_cli(*args, "-o", str(tmp_path / f"{name}_single.h5"))
        assert one.code == 0, one.stderr
        two = json.loads((tmp_path / f"{name}.json").read_text())
        _close(one.json(), two, name)


BAD = """
import os
import time
import torch

def make():
    if os.environ.get("RANK") == "1":
        with open(os.path.join(os.path.dirname(__file__), "failed_at"), "w") as f:
            f.write(repr(time.time()))
        raise ValueError("rank 1 cannot read its shard")
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 64, generator=g), torch.randint(0, 10, (40,), generator=g)
"""


@pytest.mark.slow
def test_a_rank_that_fails_ends_every_rank(tmp_path):
    import torch

    (tmp_path / "bad.py").write_text(textwrap.dedent(BAD))
    ck = torch.load(DEMO_A, weights_only=True)
    ck["landscape"] = {**ck["landscape"], "data": "bad.py:make"}
    torch.save(ck, tmp_path / "ck.pt")
    run = _torchrun("-m", "landscape_cli.main", "inspect", str(tmp_path / "ck.pt"), "--no-plot",
                    "-o", str(tmp_path / "x.h5"), timeout=120)
    after_failure = time.time() - float((tmp_path / "failed_at").read_text())
    assert run.returncode != 0 and after_failure < 30, (run.returncode, after_failure)
    errors = [line for line in run.stderr.splitlines() if line.startswith("landscape: error")]
    assert len(errors) == 1 and "rank 1 cannot read its shard" in errors[0], run.stderr[-2000:]
    assert not (tmp_path / "x.h5").exists()


DATASET = """
import json, os, sys
import torch
from torch.utils.data import Dataset
import landscape
from landscape import distributed

class Counting(Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(103, 6, generator=g, dtype=torch.float64)
        self.y = torch.randint(0, 3, (103,), generator=g)
        self.reads = 0
    def __len__(self):
        return 103
    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]

def numbers(data):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    p = landscape.Problem(model.double(), data, loss="cross-entropy", batch_size=10,
                          dtype=torch.float64, device="cpu")
    from landscape.curvature import make_operator
    v = torch.linspace(-1, 1, p.size, dtype=torch.float64)[None]
    loss, g = p.loss_and_grad()
    return {"loss": loss, "grad": g.tolist(), "hv": make_operator(p)(v)[0].tolist()}

if __name__ == "__main__":
    data = Counting()
    out = numbers(data)
    out["reads"] = data.reads
    path = os.path.join(sys.argv[1], f"rank{distributed.rank()}.json")
    open(path, "w").write(json.dumps(out))
"""


@pytest.mark.slow
def test_ranks_read_only_their_share_of_a_dataset(tmp_path):
    import importlib.util

    (tmp_path / "ds.py").write_text(DATASET)
    run = _torchrun(str(tmp_path / "ds.py"), str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    spec = importlib.util.spec_from_file_location("ds", tmp_path / "ds.py")
    ds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ds)
    one = ds.numbers(ds.Counting())
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        _close(one, {k: r[k] for k in one})
    # 11 batches of 10 (the last of 3): rank 0 has 6 (53 items), rank 1 has 5 (50 items). A
    # rank reads the first batch twice at construction (the repeatability check), then only its
    # own items once: the set is small enough to stay in memory between passes. Reading the
    # whole stream and keeping its share would read 20 + 103 on each.
    assert [r["reads"] for r in ranks] == [20 + 53, 20 + 50]
