"""Smoke test of the benchmark suite: workloads build, our adapter answers every question on
the smallest workload, and the reference adapters run when (and only when) installed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.adapters import Settings, load_all
from benchmarks.adapters import landscape_ as ours
from benchmarks.measure import measure
from benchmarks.reference import reference
from benchmarks.rows import Row, score
from benchmarks.workloads import build, build_all

SMALL = Settings(trace_budget=12, slq_steps=20, block_k=4)


def test_workloads_build_and_skip_gpu_only_on_cpu():
    ws, notes = build_all("cpu", quick=True, only=["mlp", "resnet", "gpt"])
    assert sorted(w.name for w in ws) == ["gpt", "mlp", "resnet"]
    assert all(len(w.batches()) >= 1 for w in ws)
    _, notes = build_all("cpu")
    assert any("resnet18" in n and "skipped" in n for n in notes)


def test_our_adapter_on_the_mlp_workload():
    w = build("mlp", "cpu", quick=True)
    ref = reference(w)
    assert ref.spectrum is not None and ref.spectrum.size == w.n_params
    tasks = ours.tasks(w, SMALL)
    rows = []
    for key in ("top1", "trace:xtrace", "slq", "block"):
        row = Row(w.name, key, ours.NAME, measure(tasks[key], torch.device("cpu"), repeats=1))
        score(row, ref)
        assert row.m.ok, row.m.error
        rows.append(row)
    assert rows[0].accuracy is not None and rows[0].accuracy < 1e-3
    assert rows[0].matvecs and rows[0].matvecs > 0
    assert np.isfinite(rows[1].accuracy)
    assert rows[3].matvecs == SMALL.block_k


@pytest.mark.parametrize("name", ["pyhessian", "eigenthings", "curvlinops"])
def test_reference_adapter_top1_when_installed(name):
    adapter = next(a for a in load_all() if a.NAME == name)
    if not adapter.available():
        pytest.skip(f"{name} not installed (benchmarks/requirements.txt)")
    w = build("mlp", "cpu", quick=True)
    row = Row(w.name, "top1", name, measure(adapter.tasks(w, SMALL)["top1"],
                                             torch.device("cpu"), repeats=1, warmup=0))
    assert row.m.ok, row.m.error
    assert row.matvecs and row.matvecs > 0


def test_runs_of_several_tasks_are_interleaved_and_a_failure_stops_only_its_task():
    from benchmarks.measure import Answer, measure_together

    calls: list[str] = []

    def task(name: str, fail_at: int | None = None):
        def run() -> Answer:
            calls.append(name)
            if fail_at is not None and calls.count(name) == fail_at:
                raise RuntimeError("broken\nsecond line")
            return Answer(values=np.array([1.0]), matvecs=calls.count(name))
        return run

    a, b, c = measure_together([task("a"), task("b", fail_at=2), task("c")],
                               torch.device("cpu"), repeats=3)
    assert calls == ["a", "b", "c", "a", "b", "c", "a", "c", "a", "c"]
    assert a.ok and len(a.times) == 3 and a.answer.matvecs == 4  # the last run's answer
    assert not b.ok and b.error == "RuntimeError: broken" and b.answer is None
    assert c.ok and len(c.times) == 3


def test_a_slow_first_call_is_the_timed_one_unless_the_task_prepares_in_it(monkeypatch):
    """With ``max_seconds``, a task whose warm-up takes longer is timed once, on that call (as a
    user meets it); a task whose first call does set-up work (eigenthings' step-count search)
    still gets a separate timed call, which holds no set-up."""
    from types import SimpleNamespace

    import benchmarks.measure as measure

    clock = iter(range(0, 10_000, 100))  # every call "takes" 100 s
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))

    def task(prepares: bool):
        calls: list[int] = []

        def run() -> measure.Answer:
            calls.append(1)
            return measure.Answer(values=np.array([1.0]), matvecs=len(calls))
        if prepares:
            run.prepares = True
        return run

    plain, searching = measure.measure_together([task(False), task(True)], torch.device("cpu"),
                                                repeats=3, max_seconds=60)
    assert plain.answer.matvecs == 1 and len(plain.times) == 1  # its first call, timed
    assert searching.answer.matvecs == 2 and len(searching.times) == 1  # the second call


def test_realistic_cpu_sizes_are_the_issues():
    """Issue 16's CPU sizes: a ResNet of 0.1-0.3M parameters on 512 images, GPTs of ~0.5M and
    ~2M on 32-64 sequences of 64 tokens, the MLP on a few thousand samples."""
    ws, _ = build_all("cpu", size="real")
    got = {w.name: w for w in ws}
    assert sorted(got) == ["gpt", "gpt2m", "mlp", "resnet"]
    assert 1e5 <= got["resnet"].n_params <= 3e5 and got["resnet"].n_samples == 512
    assert 4e5 <= got["gpt"].n_params <= 6e5 and 1.5e6 <= got["gpt2m"].n_params <= 2.5e6
    assert all(32 <= got[n].n_samples <= 64 and got[n].x.shape[1] == 64 for n in ("gpt", "gpt2m"))
    assert got["mlp"].n_samples >= 2000
    assert "SMOKE TEST" in build("gpt", "cpu").description


def test_pyhessian_eig_shim_gives_the_symmetric_eigenpairs_and_leaves_torch_as_it_was():
    """PyHessian's SLQ reads ``torch.eig(T, eigenvectors=True)`` as (values[:, 0] real parts,
    vectors); the shim must give T's eigenvalues with orthonormal eigenvectors, only inside."""
    from benchmarks.adapters.pyhessian_ import eig_shim

    before = getattr(torch, "eig", None)
    a = torch.randn(6, dtype=torch.float64)
    b = torch.rand(5, dtype=torch.float64) + 0.1
    T = torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)
    with eig_shim():
        vals, vecs = torch.eig(T, eigenvectors=True)
    assert getattr(torch, "eig", None) is before
    assert torch.equal(vals[:, 1], torch.zeros(6, dtype=torch.float64))
    np.testing.assert_allclose(np.sort(vals[:, 0].numpy()), np.linalg.eigvalsh(T.numpy()),
                               atol=1e-12)
    np.testing.assert_allclose((T @ vecs).numpy(), (vecs * vals[:, 0]).numpy(), atol=1e-12)
    assert abs(float((vecs[0] ** 2).sum()) - 1) < 1e-12  # SLQ weights b_[0, :]**2 sum to 1


def test_issue_16_targets_compare_with_the_fastest_correct_reference():
    from benchmarks.measure import Answer, Measurement
    from benchmarks.report import costs, targets_real

    def row(key, tool, seconds, mv, acc=None, result=""):
        return Row("gpt", key, tool, Measurement(seconds, [seconds], 0, Answer(matvecs=mv)),
                   accuracy=acc, result=result)

    rows = [row("top1", "landscape", 1.0, 20, 1e-6),
            row("top1", "pyhessian", 1.2, 30, 5e-2),  # fastest, but wrong: not the reference
            row("top1:steps", "eigenthings", 2.0, 22, 1e-6),
            row("top1", "eigenthings", 0.1, 2, 0.8, "reports not converged"),
            row("slq", "landscape", 3.0, 100), row("slq", "eigenthings", 4.0, 100),
            row("hvp", "landscape", 2.1, 1), row("grad", "landscape", 1.0, 0)]
    lines = targets_real(rows, costs(rows, 16), 1e-3)
    top1 = next(x for x in lines if "top-1" in x)
    assert top1.startswith("- **met**") and "eigenthings top1:steps 2.000 s" in top1
    assert "0.50 (time), 0.91 (matvecs)" in top1
    slq = next(x for x in lines if "SLQ" in x)
    assert slq.startswith("- **MISSED**") and "0.75" in slq and "missed by 1.25x" in slq
    hvp = next(x for x in lines if "HVP" in x)
    assert hvp.startswith("- **MISSED**") and "2.10" in hvp


def test_product_flops_match_the_closed_form_of_a_tanh_mlp():
    """benchmarks/product_flops.py on the quick MLP (16 -> 16 -> 4, tanh, 512 samples, one
    batch): a gradient is the forward's two products (2 n d h + 2 n h o) plus dW2 and dh
    (2 n h o each) and dW1 (2 n d h; the input needs no gradient), as counted by hand; the
    graph-building gradient does the same products; the double backward costs more."""
    from benchmarks.product_flops import floor

    n, d, h, o = 512, 16, 16, 4
    by_hand = (2 * n * d * h + 2 * n * h * o) + 2 * (2 * n * h * o) + 2 * n * d * h
    f = floor("mlp", "quick")
    assert f["grad"] == by_hand == f["graph"]
    assert f["grad"] < f["kept"] < 3 * f["grad"]


@pytest.mark.parametrize("name", ["mlp", "resnet", "gpt"])
def test_product_flops_on_shape_only_tensors_match_the_computed_ones(name):
    """--meta (how the GPU sizes are counted on a CPU) counts what the real pass does."""
    from benchmarks.product_flops import floor, floor_meta

    assert floor_meta(name, "quick") == floor(name, "quick")


def test_a_reference_tool_named_but_not_installed_stops_the_run(monkeypatch, tmp_path, capsys):
    """`--tools pyhessian` where it cannot be imported exits 2 before measuring anything (a long
    run would otherwise time landscape alone and say so only in the page's notes)."""
    from benchmarks import run
    from benchmarks.adapters import pyhessian_

    monkeypatch.setattr(pyhessian_, "available", lambda: False)
    out = tmp_path / "page.md"
    with pytest.raises(SystemExit) as exc:
        run.main(["--quick", "--tools", "landscape", "pyhessian", "--out", str(out)])
    assert exc.value.code == 2 and not out.exists()
    assert "--tools names pyhessian" in capsys.readouterr().err
