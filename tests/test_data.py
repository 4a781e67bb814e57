"""Data specs: built-in sets, files of each format, factories, and bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape.errors import InputError
from landscape.loading import load_data


@pytest.mark.parametrize("name,x_shape,y_dtype,task", [
    ("gmm", (512, 16), torch.long, "classification"),
    ("regression", (512, 16), torch.float32, "regression"),
    ("tokens", (128, 32), torch.long, "classification"),
    ("images", (512, 3, 32, 32), torch.long, "classification"),
])
def test_builtins(name, x_shape, y_dtype, task):
    data = load_data(name, seed=3)
    assert tuple(data.x.shape) == x_shape and data.y.dtype == y_dtype and data.task == task
    assert len(data) == x_shape[0] and data.name == name
    again = load_data(name, seed=3)
    assert torch.equal(data.x, again.x) and torch.equal(data.y, again.y)
    assert not torch.equal(load_data(name, seed=4).x, data.x)


def test_builtin_options_and_max_samples():
    data = load_data("gmm", {"n": 100, "dim": 3, "classes": 2}, max_samples=10)
    assert data.x.shape == (10, 3) and set(data.y.tolist()) <= {0, 1}
    assert torch.equal(data.x, load_data("gmm", {"n": 100, "dim": 3, "classes": 2}).x[:10])
    tokens = load_data("tokens", {"n": 4, "seq_len": 5, "vocab": 9})
    assert tokens.x.shape == tokens.y.shape == (4, 5)
    assert torch.equal(tokens.x[:, 1:], tokens.y[:, :-1])  # y is x shifted by one
    with pytest.raises(InputError, match=r"no option\(s\) \['dimm'\]"):
        load_data("gmm", {"dimm": 3})
    with pytest.raises(InputError, match="`max_samples` must be positive"):
        load_data("gmm", max_samples=0)


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 4)), rng.integers(0, 3, 20)


def test_every_file_format_loads_identical_tensors(arrays, tmp_path):
    x, y = arrays
    np.savez(tmp_path / "d.npz", x=x, y=y)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "dict.pt")
    torch.save((torch.from_numpy(x), torch.from_numpy(y)), tmp_path / "tuple.pt")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        f["x"], f["y"] = x, y
    loaded = [load_data(name, base_dir=str(tmp_path))
              for name in ("d.npz", "dict.pt", "tuple.pt", "d.h5", "d.hdf5")]
    for data in loaded:
        assert data.x.dtype == torch.float32 and data.y.dtype == torch.long
        assert torch.equal(data.x, loaded[0].x) and torch.equal(data.y, loaded[0].y)
        assert data.task == "classification"
    assert torch.equal(loaded[0].x, torch.from_numpy(x).float())
    assert len(load_data(str(tmp_path / "d.npz"), max_samples=5)) == 5  # absolute path


def test_file_errors(arrays, tmp_path):
    x, y = arrays
    with pytest.raises(InputError, match="data file missing.npz not found"):
        load_data("missing.npz", base_dir=str(tmp_path))
    np.savez(tmp_path / "noy.npz", x=x, z=y)
    with pytest.raises(InputError, match="lacks 'y' \\(it has: x, z\\)"):
        load_data(str(tmp_path / "noy.npz"))
    with h5py.File(tmp_path / "none.h5", "w") as f:
        f["a"] = x
    with pytest.raises(InputError, match="lacks 'x' and 'y'"):
        load_data(str(tmp_path / "none.h5"))
    np.savez(tmp_path / "short.npz", x=x, y=y[:7])
    with pytest.raises(InputError, match="x has 20 samples but y has 7"):
        load_data(str(tmp_path / "short.npz"))
    np.savez(tmp_path / "empty.npz", x=x[:0], y=y[:0])
    with pytest.raises(InputError, match="empty \\(0 samples\\)"):
        load_data(str(tmp_path / "empty.npz"))
    (tmp_path / "junk.pt").write_bytes(b"not a tensor file")
    with pytest.raises(InputError, match="cannot read data file .*junk.pt"):
        load_data(str(tmp_path / "junk.pt"))
    with pytest.raises(InputError, match="unknown data 'cifar'"):
        load_data("cifar")


FACTORIES = '''
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

X = torch.arange(24, dtype=torch.float64).reshape(12, 2)
Y = torch.arange(12) % 3

def as_tuple(scale=1.0):
    return X * scale, Y

def as_dataset():
    return TensorDataset(X, Y)

class Pairs(Dataset):
    def __len__(self):
        return 12
    def __getitem__(self, i):
        return {"x": X[i], "y": Y[i]}

def as_loader():
    return DataLoader(TensorDataset(X, Y), batch_size=5)

def empty():
    return TensorDataset(X[:0], Y[:0])

def broken():
    raise RuntimeError("disk on fire")

def weird():
    return 42
'''


def _read_all(source, max_samples=None):
    """Every sample a Problem would read from ``source``, stacked."""
    from landscape.stream import BatchStream

    batches = list(BatchStream(source, batch_size=5, max_samples=max_samples))
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def test_factories(tmp_path):
    (tmp_path / "sets.py").write_text(FACTORIES)
    base = str(tmp_path)
    reference = load_data("sets.py:as_tuple", base_dir=base)
    assert reference.x.dtype == torch.float32 and reference.x.shape == (12, 2)
    for name in ("as_dataset", "Pairs", "as_loader"):  # streams, read afresh on every pass
        data = load_data(f"sets.py:{name}", base_dir=base)
        assert data.x is None and data.task == "stream", name
        x, y = _read_all(data.source)
        assert torch.equal(x.float(), reference.x) and torch.equal(y, reference.y), name
    assert torch.equal(load_data("sets.py:as_tuple", {"scale": 2.0}, base_dir=base).x,
                       2 * reference.x)
    assert len(_read_all(load_data("sets.py:as_loader", base_dir=base).source, 7)[1]) == 7
    assert len(_read_all(load_data("sets.py:as_dataset", base_dir=base).source, 3)[1]) == 3
    with pytest.raises(InputError, match="empty \\(0 samples\\)"):
        load_data("sets.py:empty", base_dir=base)
    with pytest.raises(InputError, match="RuntimeError: disk on fire"):
        load_data("sets.py:broken", base_dir=base)
    with pytest.raises(InputError, match="returned int"):
        load_data("sets.py:weird", base_dir=base)
    with pytest.raises(InputError, match="cannot import module 'nowhere_xyz'"):
        load_data("nowhere_xyz:make")


def test_in_memory_loader_and_regression_targets(tmp_path):
    x, y = torch.randn(9, 2, dtype=torch.float64), torch.randn(9, 1, dtype=torch.float64)
    torch.save({"x": x, "y": y}, tmp_path / "r.pt")
    data = load_data(str(tmp_path / "r.pt"))
    assert data.task == "regression" and data.y.dtype == torch.float32
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    assert len(list(loader)) == 3
