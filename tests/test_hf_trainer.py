"""A Hugging Face Trainer's checkpoint-N/ folders, written by a real Trainer run in the test.

The known answers: the Trainer's own optimizer, resumed from ``optimizer.pt`` the way the
Trainer resumes it, taking one AdamW step on the whole-set gradient; ``trainer_state.json``'s
``global_step``. Before, the folder's optimizer.pt was never read (sharpness fell back to a
gradient line search) and track numbered the folders 0, 1, ... by name.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it

VOCAB, ROWS, T = 50, 16, 12
ARGS = dict(max_steps=4, save_steps=2, per_device_train_batch_size=4, learning_rate=1e-3,
            weight_decay=0.1, report_to=[], use_cpu=True, logging_steps=100, seed=0,
            disable_tqdm=True)


def _ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (ROWS, T), generator=torch.Generator().manual_seed(0))


class _Rows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return ROWS

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": _ids()[i], "labels": _ids()[i]}


def _gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=VOCAB,
                                     n_positions=T, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """out/checkpoint-2 (lr 5e-4 next, the linear schedule halfway) and out/checkpoint-4 (lr 0)."""
    root = tmp_path_factory.mktemp("trainer")
    args = transformers.TrainingArguments(output_dir=str(root / "out"), **ARGS)
    transformers.Trainer(model=_gpt2(), args=args, train_dataset=_Rows()).train()
    np.save(root / "tokens.npy", _ids().numpy())
    return root


def _as_old_torch_wrote_it(run) -> str:
    """checkpoint-2 with the optimizer's groups as torch < 2.6 writes them: no
    ``decoupled_weight_decay`` flag, so Adam and AdamW look alike."""
    import shutil

    folder = run / "old-torch"
    if not folder.exists():
        shutil.copytree(run / "out" / "checkpoint-2", folder)
        sd = torch.load(folder / "optimizer.pt", weights_only=True)
        for group in sd["param_groups"]:
            del group["decoupled_weight_decay"]
        torch.save(sd, folder / "optimizer.pt")
    return str(folder)


@pytest.mark.parametrize("written_by", ["torch", "torch<2.6"])
def test_rebuilt_step_is_the_resumed_trainers_next_step(run, written_by):
    """The Trainer builds AdamW (weight decay 0.1 here): read as Adam's L2 decay, the torch<2.6
    folder's step was another one, with only a note that Adam was assumed."""
    import landscape
    from landscape import steps

    folder = str(run / "out" / "checkpoint-2")
    if written_by == "torch<2.6":
        folder = _as_old_torch_wrote_it(run)
    problem = landscape.open(folder, data=str(run / "tokens.npy"), device="cpu",
                             dtype=torch.float64)
    update, state = steps.update(problem)
    assert state is not None and state.kind == "adamw" and state.step == 2.0
    assert update.source == "adam" and not any("assuming Adam" in n for n in problem.notes)

    model = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager")
    model = model.double()  # both sides in float64: what is left is the rebuild's own error
    args = transformers.TrainingArguments(output_dir=str(run / "resume"), **ARGS)
    opt = transformers.Trainer(model=model, args=args).create_optimizer()
    opt.load_state_dict(torch.load(os.path.join(run / "out" / "checkpoint-2", "optimizer.pt"),
                                   weights_only=True))
    before = [p.detach().clone() for p in model.parameters()]
    ids = _ids()
    logits = model(input_ids=ids).logits  # the next-token mean over every row at once (HF's
    # own loss takes the logits to float32 first)
    torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1)
                                      ).backward()
    opt.step()
    real = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(model.parameters(), before)])
    assert [n for n, _ in model.named_parameters()] == problem.names
    err = float((update.vector.cpu() - real).abs().max() / real.abs().max())
    assert err < 1e-12, err


def test_folders_are_ordered_by_their_global_step(run):
    from landscape.loading import load_checkpoint

    ck = load_checkpoint(str(run / "out" / "checkpoint-4"))
    assert ck.metadata["global_step"] == 4 and ck.optimizer is not None
    out = run / "track.h5"
    done = run_cli("track", str(run / "out" / "checkpoint-*"), "--data", str(run / "tokens.npy"),
                   "--metrics", "loss", "--device", "cpu", "--no-plot", "-o", str(out))
    assert done.code == 0, done.stderr
    import h5py

    with h5py.File(out) as f:
        assert list(f["track/step"][()]) == [2.0, 4.0]
        assert f["track"].attrs["step_source"] == "global_step"


def test_a_schedule_decayed_to_zero_steps_nowhere_along_adams_direction(run):
    """The last checkpoint of a linear schedule stores lr 0, the final model of most runs.
    Before, sharpness and ghost stopped on it ('the update direction is zero'). Now the update
    is AdamW's direction (its step at any lr > 0, scaled), so uᵀHu/‖u‖² equals the one at
    --lr 1e-3; ghost's step τ is 0; Adam's edge has threshold inf and ratio 0."""
    import h5py

    folder = str(run / "out" / "checkpoint-4")
    common = [folder, "--data", str(run / "tokens.npy"), "--device", "cpu", "--no-plot",
              "--top-k", "1", "--random", "0"]
    zero = run_cli("sharpness", *common, "-o", str(run / "s0.h5"))
    assert zero.code == 0, zero.stderr
    assert "lr is 0 in every param group" in zero.stderr and "nanogpt/hf" in zero.stderr
    given = run_cli("sharpness", *common, "--lr", "1e-3", "-o", str(run / "s1.h5"))
    assert given.code == 0, given.stderr
    with h5py.File(run / "s0.h5") as a, h5py.File(run / "s1.h5") as b:
        assert a["sharpness/directional/update"][()] == pytest.approx(
            b["sharpness/directional/update"][()], rel=1e-6)
        assert a["sharpness/preconditioned/ratio"][()] == 0.0
        assert np.isinf(a["sharpness/preconditioned/threshold"][()])
        assert a["sharpness/preconditioned/lambda_max"][()] == pytest.approx(
            b["sharpness/preconditioned/lambda_max"][()], rel=1e-4)  # one group rate: same P
        assert b["sharpness/preconditioned/ratio"][()] > 0
    ghost = run_cli("ghost", folder, "--data", str(run / "tokens.npy"), "--device", "cpu",
                    "--no-plot", "-o", str(run / "ghost0.h5"))
    assert ghost.code == 0 and "step tau 0 from lr 0 (adam state)" in ghost.stdout, ghost.stderr

    import landscape
    from landscape import steps
    from landscape.analyses.optimizer_step import adam_threshold
    from landscape.errors import InputError

    state = steps.optimizer_state(landscape.open(folder, data=str(run / "tokens.npy"),
                                                 device="cpu"))
    with pytest.raises(InputError, match="needs a learning rate > 0"):
        adam_threshold(state)  # (2 + 2β1)/((1 − β1)·0) was a ZeroDivisionError
    assert adam_threshold(state, 1e-3)[0] == pytest.approx(3.8 / (0.1 * 1e-3), rel=1e-12)


def test_every_checkpoint_argument_takes_a_folder(run):
    """surface and check took CKPT as a file only (click: "is a directory", exit 2)."""
    folder, data = str(run / "out" / "checkpoint-2"), ["--data", str(run / "tokens.npy")]
    common = [*data, "--device", "cpu", "--no-plot"]
    surface = run_cli("surface", folder, "--steps", "3", *common, "-o", str(run / "sf.h5"))
    assert surface.code == 0, surface.stderr
    check = run_cli("check", folder, "--rule", "lmc.barrier_loss < 1", "--against",
                    str(run / "out" / "checkpoint-4"), *data, "--device", "cpu",
                    "-o", str(run / "ck.h5"))
    assert check.code == 0, check.stderr
    assert "1 of 1 rules hold" in check.stdout + check.stderr


def test_track_runs_through_a_schedule_decayed_to_zero(run):
    """The last folder's lr is 0: track stopped there (the update had no unit vector). Its ghost
    row now runs along AdamW's direction, which any lr > 0 scales without turning (the radius
    equals the one taken with --lr), with the zero step it is: r = 0."""
    import h5py

    args = ["track", str(run / "out" / "checkpoint-*"), "--data", str(run / "tokens.npy"),
            "--metrics", "ghost", "--device", "cpu", "--no-plot"]
    plain = run_cli(*args, "-o", str(run / "g0.h5"))
    assert plain.code == 0, plain.stderr
    given = run_cli(*args, "--lr", "1e-3", "-o", str(run / "g1.h5"))
    assert given.code == 0, given.stderr
    with h5py.File(run / "g0.h5") as a, h5py.File(run / "g1.h5") as b:
        assert a["track/ghost_r"][1] == 0.0 and b["track/ghost_r"][1] > 0
        assert a["track/ghost_radius"][1] == pytest.approx(b["track/ghost_radius"][1], rel=1e-6)


def test_unreadable_side_files_leave_the_state_out_with_a_note(run, tmp_path):
    import shutil

    from landscape.loading import load_checkpoint

    folder = tmp_path / "bad"
    shutil.copytree(run / "out" / "checkpoint-2", folder)
    (folder / "optimizer.pt").write_bytes(os.urandom(1000))
    (folder / "trainer_state.json").write_text('{"global_step": "two"}')
    ck = load_checkpoint(str(folder))
    assert ck.optimizer is None and "global_step" not in ck.metadata
    assert any("does not load with weights_only=True" in n for n in ck.metadata["notes"])
    good = load_checkpoint(str(run / "out" / "checkpoint-2"))  # same weights; its state is
    assert good.optimizer is not None and good.sha256 != ck.sha256  # read, and in its digest


def test_eos_ratio_follows_the_trainers_schedule(run):
    """Without --lr each folder is held to its own lr: 5e-4 halfway down the linear schedule,
    0 at its end (ratio 0, threshold inf, written "inf" in the CSV, not left empty as NaN; the
    preconditioned λ_max is still taken, at equal group rates, as sharpness takes it)."""
    import csv

    import h5py

    out, table = run / "eos.h5", run / "eos.csv"
    done = run_cli("track", str(run / "out" / "checkpoint-*"), "--data", str(run / "tokens.npy"),
                   "--metrics", "eos_ratio", "--device", "cpu", "--no-plot", "-o", str(out),
                   "--csv", str(table))
    assert done.code == 0, done.stderr
    with h5py.File(out) as f:
        t = {k: f["track"][k][()] for k in ("lr", "eos_ratio", "eos_threshold",
                                             "lambda_max_preconditioned")}
    assert list(t["lr"]) == pytest.approx([5e-4, 0.0], rel=1e-9)
    assert t["eos_threshold"][0] == pytest.approx(3.8 / (0.1 * 5e-4), rel=1e-9)
    assert t["eos_ratio"][0] == pytest.approx(t["lambda_max_preconditioned"][0]
                                              / t["eos_threshold"][0], rel=1e-9)
    assert t["eos_ratio"][1] == 0.0 and np.isinf(t["eos_threshold"][1])
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["eos_threshold"] == "inf" and float(rows[1]["lambda_max_preconditioned"]) > 0
