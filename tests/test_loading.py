"""Checkpoint formats, safe loading, strict key matching and Adam state."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from torch import nn

from landscape.errors import InputError
from landscape.loading import (
    describe_optimizer,
    load_checkpoint,
    load_into,
    read_optimizer,
)
from landscape.loading.zoo import ZOO

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def make_model() -> nn.Module:
    torch.manual_seed(0)
    model = ZOO["resnet"](width=4, blocks=[1, 1], num_classes=3)
    with torch.no_grad():  # non-default BatchNorm buffers, so buffers are checked too
        model(torch.randn(4, 3, 8, 8))
    model.train()(torch.randn(4, 3, 8, 8))
    return model.eval()


def fresh() -> nn.Module:
    torch.manual_seed(123)
    return ZOO["resnet"](width=4, blocks=[1, 1], num_classes=3)


def assert_same(model: nn.Module, reference: nn.Module) -> None:
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return make_model()


def _optimizer_sd(model: nn.Module) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return opt.state_dict()


def write(kind: str, model: nn.Module, path: str) -> None:
    sd = model.state_dict()
    if kind == "plain":
        torch.save(sd, path)
    elif kind == "state_dict":
        torch.save({"state_dict": sd, "epoch": 3}, path)
    elif kind == "model":
        torch.save({"model": sd}, path)
    elif kind == "lightning":
        torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()},
                    "optimizer_states": [_optimizer_sd(model)], "epoch": 1, "global_step": 10,
                    "pytorch-lightning_version": "2.4.0"}, path)
    elif kind == "ddp":
        torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    elif kind == "compiled":
        torch.save({f"_orig_mod.module.{k}": v for k, v in sd.items()}, path)
    elif kind == "safetensors":
        from safetensors.torch import save_file

        spec = {"model": "resnet", "model_kwargs": {"width": 4}}
        save_file({k: v.contiguous() for k, v in sd.items()}, path,
                  metadata={"landscape": json.dumps(spec), "note": "hi"})
    elif kind == "self":
        torch.save({"state_dict": sd, "optimizer": _optimizer_sd(model),
                    "landscape": {"model": "resnet", "data": "images", "loss": "cross-entropy"}},
                   path)
    elif kind == "pickled":
        torch.save(model, path)
    elif kind == "torchscript":
        torch.jit.script(model).save(path)


FORMATS = {"plain": "state_dict", "state_dict": "dict[state_dict]", "model": "dict[model]",
           "lightning": "lightning", "ddp": "state_dict", "compiled": "state_dict",
           "safetensors": "safetensors", "self": "self-describing",
           "pickled": "pickled-module", "torchscript": "torchscript"}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_every_format_loads_identical_parameters(kind, model, tmp_path):
    path = str(tmp_path / ("ckpt.safetensors" if kind == "safetensors" else "ckpt.pt"))
    write(kind, model, path)
    trust = kind in ("pickled", "torchscript")
    ckpt = load_checkpoint(path, trust=trust)
    assert ckpt.format == FORMATS[kind]
    assert len(ckpt.sha256) == 64 and ckpt.path == path
    target = fresh()
    load_into(target, ckpt.state_dict)
    assert_same(target, model)
    if kind in ("lightning", "self"):
        assert ckpt.optimizer is not None and "param_groups" in ckpt.optimizer
    if kind == "self":
        assert ckpt.spec["model"] == "resnet"
    if kind == "safetensors":
        assert ckpt.spec == {"model": "resnet", "model_kwargs": {"width": 4}}
        assert ckpt.metadata == {"note": "hi"}
    if kind == "state_dict":
        assert ckpt.metadata["epoch"] == 3
    if trust:
        assert isinstance(ckpt.module, nn.Module)


@pytest.mark.parametrize("kind", ["pickled", "torchscript"])
def test_code_carrying_checkpoints_need_trust(kind, model, tmp_path):
    path = str(tmp_path / "ckpt.pt")
    write(kind, model, path)
    with pytest.raises(InputError, match="pickled module/TorchScript.*`trust`"):
        load_checkpoint(path)


class _Evil:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_does_not_run(writer, tmp_path):
    marker = tmp_path / "pwned"
    path = str(tmp_path / "evil.pt")
    payload = {"state_dict": _Evil(str(marker))}
    if writer == "torch":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    with pytest.raises(InputError, match="refused by weights-only loading.*system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_bad_files(model, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(str(tmp_path / "nope.pt"))
    with pytest.raises(InputError, match="is a directory"):
        load_checkpoint(str(tmp_path))
    adapter = tmp_path / "lora"  # what peft's save_pretrained writes: no config.json, no base
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="PEFT adapter, not a whole model: merge it"):
        load_checkpoint(str(adapter))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.pt is empty"):
        load_checkpoint(str(empty))
    noise = tmp_path / "noise.pt"
    noise.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0))
                      .to(torch.uint8).numpy().tobytes())
    with pytest.raises(InputError, match="noise.pt"):
        load_checkpoint(str(noise))
    good = tmp_path / "good.pt"
    write("self", model, str(good))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated.pt.*(truncated|corrupt)"):
        load_checkpoint(str(truncated))
    torch.save({"weights": 1}, str(tmp_path / "nosd.pt"))
    with pytest.raises(InputError, match="no state dict.*weights"):
        load_checkpoint(str(tmp_path / "nosd.pt"))


def test_missing_and_unexpected_keys(model):
    sd = dict(model.state_dict())
    removed = sd.pop("fc.weight")
    with pytest.raises(InputError, match=r"missing 1 model key\(s\): fc.weight"):
        load_into(fresh(), sd)
    sd["fc.weight"] = removed
    sd["extra.weight"] = torch.zeros(2)
    with pytest.raises(InputError, match=r"unexpected key\(s\): extra.weight"):
        load_into(fresh(), sd)
    many = {f"junk{i}": torch.zeros(1) for i in range(9)}
    with pytest.raises(InputError, match=r"\(9 in all\)"):
        load_into(fresh(), {**model.state_dict(), **many})


def test_shape_mismatch_names_parameter_and_shapes(model):
    sd = dict(model.state_dict())
    sd["fc.weight"] = torch.zeros(5, 8)
    with pytest.raises(InputError, match=r"fc.weight: checkpoint has \(5, 8\), model has \(3, 8\)"):
        load_into(fresh(), sd)


def test_non_finite_weight_names_tensor(model):
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["stem.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="stem.weight.*NaN"):
        load_into(fresh(), sd)


def test_adam_state_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = ZOO["mlp"](in_dim=6, hidden=[5], out_dim=3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for _ in range(4):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    path = str(tmp_path / "c.pt")
    torch.save({"state_dict": model.state_dict(), "optimizer": opt.state_dict()}, path)
    ckpt = load_checkpoint(path)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    state = read_optimizer(ckpt.optimizer, shapes)
    assert state is not None and state.kind == "adam" and state.step == 4.0
    assert state.covered == list(shapes) and state.order == "model"
    for h in state.hyper.values():
        assert (h.lr, h.betas, h.weight_decay) == (0.01, (0.8, 0.99), 0.1)
    for name, param in model.named_parameters():
        assert torch.equal(state.exp_avg[name], opt.state[param]["exp_avg"])
        assert torch.equal(state.exp_avg_sq[name], opt.state[param]["exp_avg_sq"])
    info = describe_optimizer(ckpt.optimizer)
    assert info["kind"] == "adam" and info["step"] == 4.0 and "exp_avg" in info["state_keys"]
    adamw = torch.optim.AdamW(model.parameters())
    assert read_optimizer(adamw.state_dict(), shapes) is None  # no steps taken: no moments yet
    model(x).sum().backward()
    adamw.step()
    assert read_optimizer(adamw.state_dict(), shapes).kind == "adamw"
    assert read_optimizer(adamw.state_dict(), shapes, kind="adam").kind == "adam"
    three = dict(list(shapes.items())[:3])
    with pytest.raises(InputError, match="lists 4 parameters but the model has 3"):
        read_optimizer(opt.state_dict(), three)


def test_demo_checkpoints_describe_themselves():
    """The committed demo (examples/train_demo.py) loads end to end from its own spec."""
    from landscape.loading import build_model, load_data

    root = os.path.join(os.path.dirname(__file__), "..", "data")
    path = os.path.join(root, "demo_a.pt")
    if not os.path.exists(path):
        pytest.skip("run examples/train_demo.py first")
    ckpt = load_checkpoint(path)
    data = load_data(ckpt.spec["data"], base_dir=root)
    for spec in (ckpt.spec["model"], "tiny_model.py:make"):
        model = build_model(spec, ckpt.spec["model_kwargs"], base_dir=root)
        load_into(model, ckpt.state_dict)
        with torch.no_grad():
            assert (model(data.x).argmax(1) == data.y).float().mean() > 0.9
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert read_optimizer(ckpt.optimizer, shapes).step == 300


def test_many_random_byte_files_all_give_input_error(tmp_path):
    """Garbage makes the unpickler fail in many ways (KeyError, IndexError): all InputError."""
    import random

    path = tmp_path / "garbage.pt"
    for seed in range(300):
        path.write_bytes(random.Random(seed).randbytes(1500))
        with pytest.raises(InputError):
            load_checkpoint(str(path))


# --- issue 17: the refusal names the offending global, and says both when there are two kinds --


class _System:
    """Unpickles as os.system("true") (never run here: the loader must refuse first)."""

    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_refusal_names_the_offending_global_not_the_tensor_machinery(writer, tmp_path):
    path = str(tmp_path / "hidden.pt")
    payload = {"weight": torch.zeros(2), "extra": {"note": _System()}}
    if writer == "torch":
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert f"would call {os.system.__module__}.system," in message  # posix.system on Linux
    assert "OrderedDict" not in message and "_rebuild" not in message


def test_module_with_a_system_call_is_described_as_both(tmp_path):
    path = str(tmp_path / "both.pt")
    model = nn.Linear(2, 2)
    model.payload = _System()  # an attribute of the module, pickled with it
    torch.save(model, path)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "pickled module" in message
    assert f"would also call {os.system.__module__}.system" in message
    assert "torch.nn.modules" not in message.split("would also call")[1]
