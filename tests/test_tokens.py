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


def test_ids_that_are_their_own_labels_default_to_the_next_token_loss():
    """Labels equal to the inputs make unshifted cross-entropy score each token against itself;
    before, that was the default for an ids file and a model of one's own, silently."""
    torch.manual_seed(0)
    model = Bigram()
    ids = torch.randint(0, 9, (6, 5))
    p = Problem(model, ids, ids.clone(), batch_size=4)
    with torch.no_grad():
        logits = model(ids)
    nxt = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 9), ids[:, 1:].reshape(-1))
    assert p.loss_fn.name == "causal-lm" and p.loss() == pytest.approx(float(nxt), rel=1e-6)
    assert any("the loss is causal-lm" in n for n in p.notes)
    shifted = Problem(model, ids[:, :-1], ids[:, 1:], batch_size=4)  # targets already the next
    assert shifted.loss_fn.name == "cross-entropy"
    mask = torch.ones(6, 5, dtype=torch.long)
    mask[0, 3:] = 0
    rows = [({"input_ids": ids, "attention_mask": mask}, torch.where(mask == 1, ids, -100))]
    assert Problem(model, rows).loss_fn.name == "causal-lm"  # padding aside, still the ids
    assert Problem(model, ids, ids.clone(), loss="cross-entropy").loss_fn.name == "cross-entropy"
