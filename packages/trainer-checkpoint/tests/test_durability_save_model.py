"""``save_model`` into a folder that holds another model's weights: no stale file is read."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from torch import nn

import trainer_checkpoint._durable as durable
from trainer_checkpoint import FolderCheckpointStore, read_weights
from trainer_core import CheckpointContent


def _model(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(width, width), nn.Linear(width, 2))


def _same(stored: dict[str, torch.Tensor], model: nn.Module) -> bool:
    expected = model.state_dict()
    return stored.keys() == expected.keys() and all(
        torch.equal(stored[k], v) for k, v in expected.items()
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"max_shard_size": 100}, {}),  # shards (+ index), then one file
        ({}, {"max_shard_size": 100}),  # one file, then shards: the old file was read first
        ({}, {"safe_serialization": False}),  # safetensors, then pickle: the same
        ({"safe_serialization": False}, {}),
    ],
    ids=["shards-then-file", "file-then-shards", "safetensors-then-bin", "bin-then-safetensors"],
)
def test_saving_over_another_model_leaves_only_its_weight_files(tmp_path, first, second) -> None:
    folder = str(tmp_path)
    big, small = _model(8, 0), _model(4, 1)
    FolderCheckpointStore(**first).save_model(folder, CheckpointContent(model=big))
    FolderCheckpointStore(**second).save_model(folder, CheckpointContent(model=small))
    assert _same(read_weights(folder), small)
    names = sorted(os.listdir(folder))
    written = {"model", "pytorch_model"} & {n.split(".")[0].split("-")[0] for n in names}
    assert len(written) == 1, names  # one format, one layout
    assert not [n for n in names if n.startswith(".")], names


def test_a_failed_save_model_puts_the_earlier_weights_back(tmp_path, monkeypatch) -> None:
    folder = str(tmp_path)
    earlier, later = _model(4, 0), _model(4, 1)
    FolderCheckpointStore().save_model(folder, CheckpointContent(model=earlier))

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)

    monkeypatch.setattr(durable.DurableFile, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        FolderCheckpointStore().save_model(folder, CheckpointContent(model=later))
    monkeypatch.undo()
    assert _same(read_weights(folder), earlier)
    assert os.listdir(folder) == ["model.safetensors"]
