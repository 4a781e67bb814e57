"""Token data files: ids alone as two tensors, input_ids with mask and labels as dict rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.errors import InputError
from landscape.loading.data import load_data
from landscape.problem import Problem


class Bigram(torch.nn.Module):
    """Next-token logits from the current token, called as Hugging Face models are."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(9, 9)

    def forward(self, input_ids, attention_mask=None):
        return self.table(input_ids)


def test_ids_files_are_inputs_and_labels(tmp_path):
    ids = torch.randint(0, 9, (5, 4))
    torch.save(ids, tmp_path / "ids.pt")
    np.save(tmp_path / "ids.npy", ids.numpy())
    for name in ("ids.pt", "ids.npy"):
        d = load_data(str(tmp_path / name), max_samples=3)
        assert torch.equal(d.x, ids[:3]) and torch.equal(d.y, ids[:3])


def test_input_ids_dicts_become_dict_batches_that_batch_size_cuts(tmp_path):
    ids = torch.randint(1, 9, (5, 4))
    mask = torch.ones(5, 4, dtype=torch.long)
    mask[2, 2:] = 0
    torch.save({"input_ids": ids, "attention_mask": mask}, tmp_path / "t.pt")
    np.savez(tmp_path / "t.npz", input_ids=ids.numpy(), labels=np.arange(5))
    rows = load_data(str(tmp_path / "t.pt")).stream
    p = Problem(Bigram(), rows, loss="cross-entropy", batch_size=2)
    assert p.n_batches == 3 and p.n_targets == 5 * 4 - 2  # masked positions are -100
    first = load_data(str(tmp_path / "t.npz")).stream[0]
    assert set(first) == {"input_ids", "labels"} and int(first["labels"]) == 0


def test_xy_files_stay_xy_and_bad_token_files_are_refused(tmp_path):
    np.savez(tmp_path / "xy.npz", x=np.zeros((3, 2)), y=np.arange(3), input_ids=np.ones((3, 2)))
    assert load_data(str(tmp_path / "xy.npz")).x.shape == (3, 2)
    np.save(tmp_path / "f.npy", np.zeros((3, 2)))
    with pytest.raises(InputError, match="integers"):
        load_data(str(tmp_path / "f.npy"))
    np.savez(tmp_path / "m.npz", input_ids=np.ones((3, 2), int), attention_mask=np.ones((3, 3)))
    with pytest.raises(InputError, match="attention_mask has shape"):
        load_data(str(tmp_path / "m.npz"))
    np.savez(tmp_path / "l.npz", input_ids=np.ones((3, 2), int), labels=np.ones(2, int))
    with pytest.raises(InputError, match="2 labels for 3 rows"):
        load_data(str(tmp_path / "l.npz"))
