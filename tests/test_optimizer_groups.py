"""Optimizer state as real training code writes it: param groups in the orders training recipes
use, per-group hyperparameters, amsgrad, momentum SGD, optimizers over part of the model.

Every expectation comes from the real ``torch.optim`` (its next step, its own state looked up
by parameter object) and an exact float64 Hessian, never from our own output.
"""

from __future__ import annotations

import copy

import pytest
import torch
from cli_helpers import run_cli
from helpers import blobs, exact_hessian
from torch import nn
from torch.nn import functional as F

from landscape.analyses import directions as dirs
from landscape.analyses.sharpness import sharpness
from landscape.errors import InputError
from landscape.loading.optimizer import read_optimizer
from landscape.problem import Problem


class ScaledMLP(nn.Module):
    """tanh MLP with a 1-d gain that is neither bias nor norm: nanoGPT and HF group it apart."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(5, 6)
        self.gain = nn.Parameter(1 + 0.1 * torch.randn(6))
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)) * self.gain)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def pick(model: nn.Module, names: list[str]) -> list[nn.Parameter]:
    named = dict(model.named_parameters())
    return [named[n] for n in names]


def two_groups(cls: type, lrs: tuple[float, float], **kw):
    """A factory of ``cls`` over the mlp with the first layer and the last in two param groups
    at the learning rates ``lrs``."""
    def make(model):
        groups = [{"params": pick(model, ["0.weight", "0.bias"]), "lr": lrs[0]},
                  {"params": pick(model, ["2.weight", "2.bias"]), "lr": lrs[1]}]
        return cls(groups, **kw)

    return make


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])


def train(model, make_opt, steps: int = 5):
    """(Problem at CKPT, CKPT's optimizer state_dict, NEXT − CKPT, torch's state by name)."""
    x, y = blobs(n=40)
    opt = make_opt(model)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(steps):
        step()
    sd = copy.deepcopy(opt.state_dict())
    ckpt = copy.deepcopy(model)
    by_name = {}
    for n, q in model.named_parameters():
        group = next((g for g in opt.param_groups if any(q is r for r in g["params"])), None)
        if group is None:
            continue
        entry = {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[q].items()}
        by_name[n] = (entry, {k: v for k, v in group.items() if k != "params"})
    before = flat(model)
    step()
    p = Problem(ckpt, x, y, batch_size=40, dtype=torch.float64)
    return p, sd, flat(model) - before, by_name


def check_step(p, state, real):
    """The rebuilt update against the real one, and its directional sharpness against u^T H u."""
    _, g = p.loss_and_grad()
    update = dirs.resolve_update(p, g, None, state, None)
    assert update.source == ("adam" if state.is_adam else "sgd")
    err = float((update.vector - real).abs().max())
    assert err < 1e-5, err
    H = exact_hessian(p)
    expected = float(real @ H @ real / (real @ real))
    r = sharpness(p, top_k=1, n_random=0, update=update, adam=state if state.is_adam else None,
                  max_steps=30)
    assert r.directional["update"] == pytest.approx(expected, rel=1e-3)
    return err, r


def adamw_groups(decay: list[str], rest: list[str], **kw):
    def make(model):
        groups = [{"params": pick(model, decay), "weight_decay": 0.05},
                  {"params": pick(model, rest), "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=0.05, **kw)

    return make


def test_weights_and_biases_in_two_groups():
    """The issue's case: AdamW, weights wd 0.05, biases wd 0."""
    p, sd, real, _ = train(mlp(), adamw_groups(["0.weight", "2.weight"], ["0.bias", "2.bias"]))
    state = read_optimizer(sd, shapes(p.model))
    assert state.kind == "adamw" and state.covered == ["0.weight", "2.weight", "0.bias", "2.bias"]
    assert state.hyper["0.bias"].weight_decay == 0.0
    assert state.hyper["2.weight"].weight_decay == 0.05
    check_step(p, state, real)


@pytest.mark.parametrize(
    "decay, rest, order",
    [
        (["fc1.weight", "fc2.weight"], ["gain", "fc1.bias", "fc2.bias"], "nanogpt"),
        (["gain", "fc1.weight", "fc2.weight"], ["fc1.bias", "fc2.bias"], "hf"),
    ],
)
def test_nanogpt_and_hf_orders(decay, rest, order):
    p, sd, real, _ = train(ScaledMLP().double(), adamw_groups(decay, rest))
    state = read_optimizer(sd, shapes(p.model))
    assert state.order == order and state.covered == decay + rest
    assert any(order in note for note in state.notes)
    check_step(p, state, real)


def test_stored_param_names_decide():
    def make(model):
        named = dict(model.named_parameters())
        groups = [{"params": [(n, named[n]) for n in ["fc2.bias", "gain"]], "weight_decay": 0},
                  {"params": [(n, named[n]) for n in ["fc2.weight", "fc1.weight", "fc1.bias"]],
                   "weight_decay": 0.1}]
        return torch.optim.AdamW(groups, lr=0.05)

    p, sd, real, _ = train(ScaledMLP().double(), make)
    assert "param_names" in sd["param_groups"][0]
    state = read_optimizer(sd, shapes(p.model))
    assert state.order == "param_names"
    check_step(p, state, real)


def test_per_group_learning_rates_and_preconditioned_sharpness():
    """Adam (L2) with amsgrad, two groups of different lr, wd and beta2."""
    def make(model):
        groups = [{"params": pick(model, ["gain", "fc1.weight", "fc1.bias"]), "lr": 0.02,
                   "weight_decay": 0.05},
                  {"params": pick(model, ["fc2.weight", "fc2.bias"]), "lr": 0.08,
                   "weight_decay": 0.0, "betas": (0.8, 0.5)}]
        return torch.optim.Adam(groups, amsgrad=True, betas=(0.9, 0.6))

    p, sd, real, by_name = train(ScaledMLP().double(), make, steps=8)
    state = read_optimizer(sd, shapes(p.model))
    assert state.order == "model" and state.kind == "adam"
    assert any(bool((e["max_exp_avg_sq"] > e["exp_avg_sq"]).any()) for e, _ in by_name.values())
    _, r = check_step(p, state, real)
    # Cohen et al.'s P from torch's own state, each group's lr folded in against the largest
    parts, wd = [], []
    for n in p.names:
        e, group = by_name[n]
        b1, b2 = group["betas"]
        t = float(e["step"])
        v = e["max_exp_avg_sq"] / (1 - b2**t)
        P = (1 - b1**t) * (v.sqrt() + group["eps"]) * (0.08 / group["lr"])
        parts.append(P.reshape(-1))
        wd.append(torch.full((e["exp_avg"].numel(),), float(group["weight_decay"])))
    d, wd = torch.cat(parts).double(), torch.cat(wd).double()
    H = exact_hessian(p)
    M = (H + torch.diag(wd)) / torch.outer(d.sqrt(), d.sqrt())
    exact = float(torch.linalg.eigvalsh(M)[-1])
    pc = r.preconditioned
    assert pc["lambda_max"] == pytest.approx(exact, rel=1e-6)
    assert pc["lr"] == 0.08 and pc["beta1"] == 0.8
    assert pc["threshold"] == pytest.approx((2 + 1.6) / (0.2 * 0.08), rel=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        {"momentum": 0.8, "dampening": 0.1, "weight_decay": 0.0},
        {"momentum": 0.5, "weight_decay": 1e-2, "maximize": True},
    ],
)
def test_sgd_momentum_buffers(kw):
    p, sd, real, _ = train(mlp(), two_groups(torch.optim.SGD, (0.1, 0.3), **kw))
    state = read_optimizer(sd, shapes(p.model))
    assert state.kind == "sgd" and len(state.covered) == 4
    check_step(p, state, real)


def test_head_only_optimizer():
    def make(model):
        return torch.optim.AdamW(pick(model, ["2.weight", "2.bias"]), lr=0.05, weight_decay=0.1)

    p, sd, real, by_name = train(mlp(), make)
    state = read_optimizer(sd, shapes(p.model))
    assert state.covered == ["2.weight", "2.bias"]
    assert any("covers 2 of 4" in note and "2.weight, 2.bias" in note for note in state.notes)
    assert float(real[: 6 * 5 + 6].abs().max()) == 0.0
    _, r = check_step(p, state, real)
    # the preconditioned sharpness is that of the head's block alone
    head = slice(36, p.size)
    e_w, group = by_name["2.weight"]
    e_b, _ = by_name["2.bias"]
    t = float(e_w["step"])
    v = torch.cat([e_w["exp_avg_sq"].reshape(-1), e_b["exp_avg_sq"]])
    b1, b2 = group["betas"]
    d = (1 - b1**t) * ((v / (1 - b2**t)).sqrt() + group["eps"])
    Hc = exact_hessian(p)[head, head]
    exact = float(torch.linalg.eigvalsh(Hc / torch.outer(d.sqrt(), d.sqrt()))[-1])
    assert r.preconditioned["lambda_max"] == pytest.approx(exact, rel=1e-6)


AMBIGUOUS = """
import torch
from torch import nn


class Gain(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, n))

    def forward(self, x):
        return x * self.weight


def make():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 4, bias=False), nn.Tanh(), nn.Linear(4, 4), Gain(4))
"""


def ambiguous_model(tmp_path) -> nn.Module:
    """Weights (4, 5), (4, 4), then 2.bias and the gain 3.weight, both (4,): HF's groups
    [weights, gain] | [bias] have the shapes of model order."""
    (tmp_path / "amb.py").write_text(AMBIGUOUS)
    namespace: dict = {}
    exec(compile(AMBIGUOUS, "amb.py", "exec"), namespace)
    return namespace["make"]().double()


HF_GROUPS = adamw_groups(["0.weight", "2.weight", "3.weight"], ["2.bias"])


def test_ambiguous_orderings_refuse_and_order_settles(tmp_path):
    p, sd, real, _ = train(ambiguous_model(tmp_path), HF_GROUPS)
    named = shapes(p.model)
    with pytest.raises(InputError, match=r"more than one parameter ordering \(hf, model\)"):
        read_optimizer(sd, named)
    state = read_optimizer(sd, named, order="hf")
    check_step(p, state, real)


def test_mismatched_shapes_refuse():
    _, sd, _, _ = train(mlp(), lambda m: torch.optim.Adam(m.parameters(), lr=0.01), steps=1)
    other = {"0.weight": (7, 5), "0.bias": (7,), "2.weight": (3, 7), "2.bias": (3,)}
    with pytest.raises(InputError, match="no ordering"):
        read_optimizer(sd, other)
    named = copy.deepcopy(sd)
    named["param_groups"][0]["param_names"] = list(other)
    with pytest.raises(InputError, match=r"0.weight has shape \(6, 5\) but the parameter"):
        read_optimizer(named, other)


# -- the command line -------------------------------------------------------------------------


def _write(tmp_path, make, model: nn.Module, spec: dict):
    """A self-describing checkpoint of ``model`` trained by the optimizer ``make`` builds."""
    x, y = blobs(n=40)
    torch.save({"x": x, "y": y}, tmp_path / "data.pt")
    p, sd, real, _ = train(model, make)
    spec = {**spec, "data": "data.pt", "loss": "cross-entropy"}
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": p.model.state_dict(), "optimizer": sd, "landscape": spec}, path)
    return path, p, real


def test_cli_head_only_optimizer(tmp_path):
    from landscape.loading.zoo import mlp as zoo_mlp

    def make(model):
        return torch.optim.AdamW(pick(model, ["layers.2.weight", "layers.2.bias"]), lr=0.05)

    kwargs = {"in_dim": 5, "hidden": [6], "out_dim": 3}
    torch.manual_seed(0)
    model = zoo_mlp(**kwargs).double()
    path, p, real = _write(tmp_path, make, model, {"model": "mlp", "model_kwargs": kwargs})
    common = ["--dtype", "float64", "--json", "--no-plot", "-o", tmp_path / "o.h5"]
    r = run_cli("sharpness", path, "--top-k", "1", "--random", "0", *common)
    assert r.code == 0, r.stderr
    assert "covers 2 of 4 parameters (layers.2.weight, layers.2.bias)" in r.stderr
    H = exact_hessian(p)
    s = r.json()["sharpness"]
    assert s["update_source"] == "adam"
    assert s["directional"]["update"] == pytest.approx(float(real @ H @ real / (real @ real)),
                                                       rel=1e-3)
    g = run_cli("ghost", path, *common)
    assert g.code == 0, g.stderr
    assert g.json()["ghost"]["tau"] == pytest.approx(float(real.norm()), rel=1e-6)


def test_cli_ambiguous_order_exits_2_and_the_flag_settles_it(tmp_path):
    path, _, real = _write(tmp_path, HF_GROUPS, ambiguous_model(tmp_path),
                           {"model": "amb.py:make"})
    common = ["--dtype", "float64", "--json", "--no-plot", "-o", tmp_path / "o.h5"]
    bad = run_cli("ghost", path, *common)
    assert bad.code == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "more than one parameter ordering" in bad.stderr and "--optimizer-order" in bad.stderr
    r = run_cli("ghost", path, "--optimizer-order", "hf", *common)
    assert r.code == 0, r.stderr
    assert r.json()["ghost"]["tau"] == pytest.approx(float(real.norm()), rel=1e-6)


def test_state_keyed_by_name_is_read_by_its_names():
    """torch.distributed.checkpoint's (and FSDP's) optimizer state is keyed by parameter name.
    Given the parameters as [layer 2, layer 0, layer 4], every shape fits model order too: read
    by shape, layer 2's moments went to layer 0 without a word."""
    dcp = pytest.importorskip("torch.distributed.checkpoint.state_dict")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 6))
    named = dict(model.named_parameters())
    given = ["2.weight", "2.bias", "0.weight", "0.bias", "4.weight", "4.bias"]
    opt = torch.optim.Adam([named[n] for n in given], lr=0.01)
    x, y = blobs(n=40, d_in=6, classes=6)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x.float()), y).backward()
        opt.step()
    sd = dcp.get_optimizer_state_dict(model, opt)
    assert set(sd["state"]) == set(given)  # keyed by name, as that API writes it
    state = read_optimizer(sd, shapes(model))
    assert state.order == "param_names"
    for n in given:
        assert torch.equal(state.exp_avg[n], opt.state[named[n]]["exp_avg"]), n
        assert torch.equal(state.exp_avg_sq[n], opt.state[named[n]]["exp_avg_sq"]), n


def test_sgd_state_gives_sharpness_its_rate_and_momentum():
    """Without lr, an SGD checkpoint's edge of stability is taken at its own next step: its
    largest group lr (0.3) and smallest momentum (0.8), against the exact λ_max. Before, the
    ratio needed --lr and --momentum, both already in the checkpoint."""
    def make(model):
        groups = [{"params": pick(model, ["0.weight", "0.bias"]), "lr": 0.1, "momentum": 0.9},
                  {"params": pick(model, ["2.weight", "2.bias"]), "lr": 0.3, "momentum": 0.8}]
        return torch.optim.SGD(groups)

    p, sd, _, _ = train(mlp(), make)
    state = read_optimizer(sd, shapes(p.model))
    lam = float(torch.linalg.eigvalsh(exact_hessian(p))[-1])
    r = sharpness(p, top_k=1, n_random=0, adam=state, max_steps=40)
    assert (r.lr, r.momentum, r.rate_source) == (0.3, 0.8, "sgd state")
    assert r.eos_ratio == pytest.approx(lam * 0.3 / (2 + 2 * 0.8), rel=1e-6)
    given = sharpness(p, top_k=1, n_random=0, adam=state, lr=0.1, max_steps=40)
    assert (given.lr, given.momentum, given.rate_source) == (0.1, 0.0, "given")
    told = sharpness(p, top_k=1, n_random=0, adam=state, momentum=0.0, max_steps=40)
    assert told.threshold == pytest.approx(2 / 0.3)
    assert sharpness(p, top_k=1, n_random=0, max_steps=40).eos_ratio is None  # no state, no lr
