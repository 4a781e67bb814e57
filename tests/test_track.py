"""``landscape track`` over the checkpoints of a short SGD run made here: the same numbers as the
single-checkpoint commands, ordered by the stored step, resumed after an interruption."""

import csv
import math
import os
import sys

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from landscape.analyses.track import track
from landscape.loading.zoo import mlp

DIGITS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "data", "digits.npz"))
KW = {"in_dim": 64, "hidden": [8], "out_dim": 10, "activation": "tanh"}
LR = 0.5
NAMES = {0: "c.pt", 4: "a.pt", 8: "b.pt"}  # names out of step order: the stored step decides
FAST = ["--max-samples", "150", "--device", "cpu"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Full-batch SGD on 150 digits, a self-describing checkpoint (with its step) every 4 steps."""
    d = tmp_path_factory.mktemp("run")
    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:150]), torch.from_numpy(data["y"][:150])
    torch.manual_seed(0)
    model = mlp(**KW)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    spec = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}
    for step in range(9):
        if step in NAMES:
            torch.save({"state_dict": model.state_dict(), "landscape": spec, "step": step},
                       d / NAMES[step])
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return d


def _close(a, b, rel=1e-5):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-9)


def test_track_rows_equal_the_single_checkpoint_commands(run_dir, monkeypatch):
    monkeypatch.chdir(run_dir)
    r = run_cli("track", "*.pt", *FAST, "--probes", "12", "--lr", str(LR), "-o", "tr.h5",
                "--csv", "tr.csv", "--plot", "tr.png")
    assert r.code == 0, r.stderr
    with h5py.File("tr.h5") as f:
        t = {k: f["track"][k][()] for k in f["track"]}
        assert f["track"].attrs["step_source"] == "step" and f.attrs["command"] == "track"
    assert list(t["step"]) == [0, 4, 8]
    paths = [p.decode() for p in t["checkpoint"]]
    assert [os.path.basename(p) for p in paths] == ["c.pt", "a.pt", "b.pt"]
    assert float(t["threshold"]) == pytest.approx(2 / LR)
    for i, path in enumerate(paths):
        ins = run_cli("inspect", path, *FAST, "--json", "-o", "i.h5").json()["inspect"]
        assert _close(t["loss"][i], ins["loss"]) and _close(t["grad_norm"][i], ins["grad_norm"])
        assert _close(t["accuracy"][i], ins["accuracy"])
        sp = run_cli("spectrum", path, *FAST, "--top-k", "1", "--no-density", "--json", "-o",
                     "s.h5", "--no-plot").json()["spectrum"]
        assert _close(t["lambda_max"][i], sp["lambda_max"])
        assert _close(t["eos_ratio"][i], sp["lambda_max"] * LR / 2)
        tr = run_cli("trace", path, *FAST, "--probes", "12", "--json", "-o", "t.h5",
                     "--no-plot").json()["trace"]
        assert _close(t["trace"][i], tr["estimate"]) and _close(t["trace_stderr"][i], tr["stderr"])
        nxt = paths[i + 1:i + 2]
        gh = run_cli("ghost", path, *nxt, *FAST, "--lr", str(LR), "--json", "-o", "g.h5",
                     "--no-plot").json()["ghost"]
        assert _close(t["ghost_radius"][i], gh["rho_a"]) and _close(t["ghost_r"][i], gh["r"])
        if nxt:
            sh = run_cli("sharpness", path, *nxt, *FAST, "--top-k", "1", "--random", "0",
                         "--json", "-o", "h.h5", "--no-plot").json()["sharpness"]
            assert _close(t["directional"][i], sh["directional"]["update"])
        else:
            assert math.isnan(t["directional"][i])
    assert t["lambda_max"][0] > 0 and t["loss"][2] < t["loss"][0]  # it trained
    with open("tr.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and float(rows[1]["lambda_max"]) == pytest.approx(t["lambda_max"][1])
    assert os.path.getsize("tr.png") > 10_000
    again = run_cli("track", "*.pt", *FAST, "--probes", "12", "--lr", str(LR), "-o", "tr.h5",
                    "--no-plot")  # complete already: resumes with nothing left to do
    assert again.code == 0 and "matvecs" in again.stderr
    other = run_cli("track", "*.pt", *FAST, "--probes", "13", "-o", "tr.h5", "--no-plot")
    assert other.code == 2 and "other options" not in other.stderr and "these options" in (
        other.stderr)


class Stop(Exception):
    pass


def test_interrupted_track_resumes_to_the_same_file(run_dir, tmp_path):
    paths = [str(run_dir / n) for n in NAMES.values()]
    kw = {"metrics": ["loss", "lambda_max", "trace", "directional", "ghost"], "probes": 8,
          "lr": LR, "open_options": {"max_samples": 100, "device": "cpu"}}
    whole = tmp_path / "whole.h5"
    track(paths, out=str(whole), **kw)

    def stop_after_one(done, total):
        if done == 1:
            raise Stop

    part = tmp_path / "part.h5"
    with pytest.raises(Stop):
        track(paths, out=str(part), progress=stop_after_one, **kw)
    with h5py.File(part) as f:
        assert len(f["track/step"]) == 1
    seen = []
    track(paths, out=str(part), progress=lambda d, n: seen.append(d), **kw)
    assert seen == [2, 3]  # the first row was taken over, not recomputed
    with h5py.File(whole) as a, h5py.File(part) as b:
        assert set(a["track"]) == set(b["track"])
        for k in a["track"]:
            x, y = a["track"][k][()], b["track"][k][()]
            if isinstance(x, np.ndarray) and x.dtype.kind == "f":
                np.testing.assert_array_equal(x, y)
            else:
                assert np.all(x == y), k
        assert a.attrs["matvecs"] == b.attrs["matvecs"]
        assert a["track"].attrs["options"] == b["track"].attrs["options"]


def test_track_bad_input_exits_2(run_dir, monkeypatch):
    monkeypatch.chdir(run_dir)
    r = run_cli("track", "*.pt", "--metrics", "loss,bogus")
    assert r.code == 2 and "bogus" in r.stderr
    r = run_cli("track", "nothing_*.pt")
    assert r.code == 2 and "no checkpoint matches" in r.stderr
    r = run_cli("track", "*.pt", "--metrics", "eos_ratio", *FAST)
    assert r.code == 2 and "--lr" in r.stderr
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    r = run_cli("track", "*.pt", "--tensorboard", "tb")
    assert r.code == 2 and 'pip install "landscape[tensorboard]"' in r.stderr


def test_tensorboard_scalars(run_dir, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.chdir(run_dir)
    r = run_cli("track", "*.pt", *FAST, "--metrics", "loss,grad_norm", "-o", "tb.h5",
                "--no-plot", "--tensorboard", "tb")
    assert r.code == 0, r.stderr
    events = EventAccumulator("tb")
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"landscape/loss", "landscape/grad_norm"}
    loss = events.Scalars("landscape/loss")
    with h5py.File("tb.h5") as f:
        assert [e.step for e in loss] == [0, 4, 8]
        assert [e.value for e in loss] == pytest.approx(list(f["track/loss"][()]), rel=1e-6)


def test_killed_track_command_resumes_to_the_same_rows(run_dir, monkeypatch):
    import signal
    import subprocess
    import time

    monkeypatch.chdir(run_dir)
    args = ["track", "*.pt", *FAST, "--probes", "8", "--metrics", "loss,lambda_max,trace,ghost",
            "--no-plot"]
    assert run_cli(*args, "-o", "whole.h5").code == 0
    cmd = [sys.executable, "-c", "import sys; from landscape_cli.main import entry; entry()",
           *args, "-o", "killed.h5"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists("killed.h5") and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    with h5py.File("killed.h5") as f:
        rows = len(f["track/step"])
    print(f"interrupted after {rows} of 3 rows, exit {proc.returncode}")
    if rows < 3:  # stopped between checkpoints, as intended (else it had already finished)
        assert proc.returncode == 130 and "the same command resumes" in err, err
    assert run_cli(*args, "-o", "killed.h5").code == 0
    with h5py.File("whole.h5") as a, h5py.File("killed.h5") as b:
        for k in ("step", "loss", "lambda_max", "trace", "trace_stderr", "ghost_radius"):
            np.testing.assert_array_equal(a["track"][k][()], b["track"][k][()])


def test_adam_eos_ratio_is_on_the_preconditioned_lambda_max(tmp_path):
    """Cohen et al. 2022: Adam's edge is λ_max(P^-1/2 H P^-1/2) = 38/lr, not the raw λ_max."""
    from helpers import adam_diagonal, exact_hessian

    import landscape

    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:150]), torch.from_numpy(data["y"][:150])
    torch.manual_seed(0)
    model = mlp(**KW).double()
    lr = 0.01
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    spec = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}
    for _ in range(6):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x.double()), y).backward()
        opt.step()
    path = tmp_path / "adam.pt"
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                "landscape": spec, "step": 6}, path)
    oo = {"max_samples": 150, "device": "cpu", "dtype": "float64"}
    r = track([str(path)], ["eos_ratio"], lr=lr, open_options=oo)
    d = adam_diagonal(model, opt)
    H = exact_hessian(landscape.open(str(path), **oo))
    exact = float(torch.linalg.eigvalsh(H / torch.outer(d.sqrt(), d.sqrt()))[-1])
    raw = float(torch.linalg.eigvalsh(H)[-1])
    assert r.columns["lambda_max_preconditioned"][0] == pytest.approx(exact, rel=1e-5)
    assert r.columns["eos_ratio"][0] == pytest.approx(exact * lr / 38, rel=1e-5)
    assert abs(exact / raw) > 10  # the raw ratio would be a different number altogether
    assert r.threshold == pytest.approx(38 / lr)
    with pytest.raises(landscape.InputError, match="no Adam state"):
        torch.save({"state_dict": model.state_dict(), "landscape": spec}, tmp_path / "bare.pt")
        track([str(tmp_path / "bare.pt")], ["eos_ratio"], lr=lr, optimizer="adam",
              open_options=oo)


def _two_groups(tmp_path, make_optimizer):
    """A checkpoint of the mlp after one step of ``make_optimizer(first, second)``, whose two
    param groups hold the first two and the other parameters, opened on 20 samples."""
    import landscape

    torch.manual_seed(0)
    model = mlp(**KW)
    params = list(model.parameters())
    opt = make_optimizer(params[:2], params[2:])
    model(torch.from_numpy(np.load(DIGITS)["x"][:20])).sum().backward()
    opt.step()
    spec = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                "landscape": spec}, tmp_path / "two.pt")
    return landscape.open(str(tmp_path / "two.pt"), max_samples=20, device="cpu")


def test_adam_threshold_is_the_one_the_preconditioned_ratio_divides_by(tmp_path):
    """With groups of different β1, the stored threshold uses the smallest, as the ratio does."""
    from landscape import steps
    from landscape.analyses import optimizer_step
    from landscape.analyses.track import threshold

    p = _two_groups(tmp_path, lambda first, second: torch.optim.Adam(
        [{"params": first, "betas": (0.9, 0.999)}, {"params": second, "betas": (0.8, 0.999)}],
        lr=0.01))
    used = optimizer_step.adam_threshold(steps.optimizer_state(p), 0.01)[0]
    assert threshold(p, 0.01) == pytest.approx(used, rel=1e-12) == (2 + 1.6) / (0.2 * 0.01)


def test_sgd_threshold_uses_the_smallest_momentum_of_the_groups(tmp_path):
    """2(1 + β)/lr is lowest for the smallest β: with groups of momentum 0.9 and 0.5 the
    threshold is 3/lr (it read the first group's 0.9: 3.8/lr, a ratio 21% too low)."""
    from landscape.analyses.track import threshold

    p = _two_groups(tmp_path, lambda first, second: torch.optim.SGD(
        [{"params": first, "momentum": 0.9}, {"params": second, "momentum": 0.5}], lr=0.1))
    assert threshold(p, 0.1) == pytest.approx(3.0 / 0.1, rel=1e-12)
    assert threshold(p, 0.1, "sgd") == pytest.approx(30.0, rel=1e-12)


def test_nanogpt_checkpoints_are_ordered_by_iter_num(tmp_path):
    """nanoGPT saves {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"}:
    copies named out of training order come back by iter_num, which is the step column."""
    from landscape.analyses.track_order import order

    torch.manual_seed(0)
    sd = mlp(**KW).state_dict()
    for name, it in (("ckpt_final.pt", 3000), ("ckpt_early.pt", 1000), ("ckpt_mid.pt", 2000)):
        torch.save({"model": sd, "model_args": {"n_layer": 1}, "iter_num": it,
                    "best_val_loss": torch.tensor(2.5), "config": {"batch_size": 12}},
                   tmp_path / name)
    got, source = order([str(tmp_path / "ckpt_*.pt")])
    assert source == "iter_num"
    assert [(os.path.basename(p), s) for p, s, _ in got] == [
        ("ckpt_early.pt", 1000.0), ("ckpt_mid.pt", 2000.0), ("ckpt_final.pt", 3000.0)]


def test_adam_before_its_first_step_has_no_eos_ratio(tmp_path):
    """A run saved at step 0 (Adam's groups, no moments) and at step 3. Before, the first row's
    eos_ratio was GD's lambda_max*lr/2 beside Adam's preconditioned ratios below it: one
    column, two rules, 19 times apart."""
    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:150]), torch.from_numpy(data["y"][:150])
    torch.manual_seed(0)
    model = mlp(**KW)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    spec = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}
    for step in range(4):
        if step in (0, 3):
            torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                        "landscape": spec, "step": step}, tmp_path / f"s{step}.pt")
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    oo = {"max_samples": 150, "device": "cpu"}
    paths = [str(tmp_path / "s0.pt"), str(tmp_path / "s3.pt")]
    r = track(paths, ["lambda_max", "eos_ratio"], lr=0.01, open_options=oo)
    ratio, pre = r.columns["eos_ratio"], r.columns["lambda_max_preconditioned"]
    assert math.isnan(ratio[0]) and math.isnan(pre[0])
    assert ratio[1] == pytest.approx(pre[1] * 0.01 / 38, rel=1e-9)
    assert r.threshold == pytest.approx(38 / 0.01)
    explicit = track(paths, ["eos_ratio"], lr=0.01, optimizer="adam", open_options=oo)
    assert math.isnan(explicit.columns["eos_ratio"][0])  # not "holds no Adam state" for the run
    sgd = track(paths, ["lambda_max", "eos_ratio"], lr=0.01, optimizer="sgd", open_options=oo)
    assert sgd.columns["eos_ratio"][0] == pytest.approx(sgd.columns["lambda_max"][0] * 0.01 / 2)


def _scheduled_run(tmp_path, make_opt, saves=(1, 3, 5)):
    """Full-batch steps on 150 digits with a StepLR halving the lr every 2 steps; a checkpoint
    (weights, optimizer state, step) after each step in ``saves``. Returns {step: (model copy,
    optimizer state copy, the lr the scheduler set for the next step)}."""
    import copy

    data = np.load(DIGITS)
    x, y = torch.from_numpy(data["x"][:150]).double(), torch.from_numpy(data["y"][:150])
    torch.manual_seed(0)
    model = mlp(**KW).double()
    opt = make_opt(model)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    spec = {"model": "mlp", "model_kwargs": KW, "data": DIGITS, "loss": "cross-entropy"}
    kept = {}
    for step in range(1, max(saves) + 1):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
        if step in saves:
            torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                        "landscape": spec, "step": step}, tmp_path / f"s{step}.pt")
            kept[step] = (*copy.deepcopy((model, opt)), opt.param_groups[0]["lr"])  # one copy:
            # the optimizer's state stays keyed by the copied model's parameters
    return kept


def test_eos_ratio_without_lr_takes_each_checkpoints_scheduled_lr(tmp_path):
    """SGD, momentum 0.9, lr 0.2 halved every 2 steps: the rows' lr are the scheduler's (0.2,
    0.1, 0.05 after steps 1, 3, 5) and each ratio is the exact λ_max · lr / (2 + 2·0.9).
    Before, eos_ratio needed one --lr for the whole run, wrong for every scheduled one."""
    from helpers import exact_hessian

    import landscape

    kept = _scheduled_run(tmp_path, lambda m: torch.optim.SGD(m.parameters(), lr=0.2,
                                                              momentum=0.9))
    oo = {"max_samples": 150, "device": "cpu", "dtype": "float64"}
    paths = [str(tmp_path / f"s{s}.pt") for s in kept]
    r = track(paths, ["lambda_max", "eos_ratio"], open_options=oo)
    assert r.columns["lr"] == pytest.approx([0.2, 0.1, 0.05], rel=1e-12)
    assert r.columns["lr"] == pytest.approx([lr for _, _, lr in kept.values()], rel=1e-12)
    for i, path in enumerate(paths):
        lam = float(torch.linalg.eigvalsh(exact_hessian(landscape.open(path, **oo)))[-1])
        lr = r.columns["lr"][i]
        assert r.columns["eos_threshold"][i] == pytest.approx(3.8 / lr, rel=1e-12)
        assert r.columns["eos_ratio"][i] == pytest.approx(lam * lr / 3.8, rel=1e-6)
    assert r.threshold is None  # no one threshold: the column holds each row's
    fixed = track(paths[:1], ["eos_ratio"], lr=0.1, open_options=oo)
    assert "lr" not in fixed.columns and fixed.threshold == pytest.approx(38.0)


def test_adam_eos_ratio_without_lr_uses_the_stored_lr(tmp_path):
    """Adam's preconditioned edge at the scheduler's lr: exact λ_max(P^-1/2 H P^-1/2) times
    lr (1 − β1)/(2 + 2β1), with P written out from torch's own state."""
    from helpers import adam_diagonal, exact_hessian

    import landscape

    kept = _scheduled_run(tmp_path, lambda m: torch.optim.Adam(m.parameters(), lr=0.02),
                          saves=(3,))
    model, opt, lr = kept[3]
    assert lr == pytest.approx(0.01)
    oo = {"max_samples": 150, "device": "cpu", "dtype": "float64"}
    r = track([str(tmp_path / "s3.pt")], ["eos_ratio"], open_options=oo)
    d = adam_diagonal(model, opt)
    H = exact_hessian(landscape.open(str(tmp_path / "s3.pt"), **oo))
    exact = float(torch.linalg.eigvalsh(H / torch.outer(d.sqrt(), d.sqrt()))[-1])
    assert r.columns["lambda_max_preconditioned"][0] == pytest.approx(exact, rel=1e-5)
    assert r.columns["eos_ratio"][0] == pytest.approx(exact * lr * 0.1 / 3.8, rel=1e-5)
    assert r.columns["eos_threshold"][0] == pytest.approx(3.8 / (0.1 * lr), rel=1e-12)


def test_eos_ratio_without_lr_or_optimizer_state_exits_2(run_dir, monkeypatch):
    monkeypatch.chdir(run_dir)
    done = run_cli("track", "*.pt", *FAST, "--metrics", "eos_ratio", "-o", "x.h5", "--no-plot")
    assert done.code == 2 and "needs --lr" in done.stderr and "optimizer state" in done.stderr
    assert not os.path.exists("x.h5")
