"""Batches land on the runtime's device; the meta device stands in for a GPU here."""

from __future__ import annotations

import pickle
from collections import OrderedDict, defaultdict
from typing import NamedTuple

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from trainer_dist import DeviceDataLoader, move_to_device

META = torch.device("meta")


class Pair(NamedTuple):
    inputs: torch.Tensor
    label: torch.Tensor


def test_nested_structures_are_moved_and_keep_their_types() -> None:
    tensor = torch.ones(2)
    batch = {
        "ids": tensor,
        "pair": Pair(tensor, tensor),
        "list": [tensor, "text", 3, None],
        "ordered": OrderedDict(a=tensor),
        "default": defaultdict(list, a=tensor),
    }
    moved = move_to_device(batch, META)
    assert moved["ids"].device == META
    assert isinstance(moved["pair"], Pair) and moved["pair"].label.device == META
    assert moved["list"][0].device == META and moved["list"][1:] == ["text", 3, None]
    assert type(moved["ordered"]) is OrderedDict and moved["ordered"]["a"].device == META
    assert type(moved["default"]) is dict and moved["default"]["a"].device == META
    assert batch["ids"].device.type == "cpu"  # the input is left alone


def test_a_tensor_already_on_the_device_is_not_copied() -> None:
    tensor = torch.ones(2)
    assert move_to_device(tensor, "cpu") is tensor
    assert move_to_device((tensor,), torch.device("cpu"))[0] is tensor


def test_device_dataloader_moves_each_batch() -> None:
    loader = DataLoader(TensorDataset(torch.arange(6.0), torch.arange(6)), batch_size=4)
    wrapped = DeviceDataLoader(loader, META)
    batches = list(wrapped)
    assert len(batches) == len(wrapped) == 2
    assert all(t.device == META for batch in batches for t in batch)
    assert [batch[0].shape[0] for batch in batches] == [4, 2]
    assert list(wrapped) != []  # re-iterable, like a DataLoader


def test_cpu_wrapper_hands_out_the_dataloaders_own_iterator() -> None:
    loader = DataLoader(TensorDataset(torch.arange(3.0)), batch_size=2)
    iterator = iter(DeviceDataLoader(loader, torch.device("cpu")))
    assert type(iterator) is type(iter(loader))


def test_non_blocking_only_for_pinned_memory_to_cuda() -> None:
    dataset = TensorDataset(torch.arange(3.0))
    pinned = DataLoader(dataset, pin_memory=True)
    assert DeviceDataLoader(pinned, torch.device("cuda", 0)).non_blocking is True
    assert DeviceDataLoader(pinned, torch.device("cpu")).non_blocking is False
    assert DeviceDataLoader(DataLoader(dataset), torch.device("cuda", 0)).non_blocking is False


class _Stream(IterableDataset):
    def __iter__(self):  # type: ignore[no-untyped-def]  # torch's signature
        yield from (torch.tensor([i]) for i in range(3))


def test_attributes_and_len_errors_come_from_the_dataloader() -> None:
    loader = DataLoader(_Stream(), batch_size=None)
    wrapped = DeviceDataLoader(loader, META)
    assert wrapped.dataset is loader.dataset
    assert wrapped.batch_size is None
    with pytest.raises(TypeError):  # how a loop learns that a loader has no length
        len(wrapped)
    with pytest.raises(AttributeError):
        _ = wrapped.no_such_attribute
    assert [t.device for t in wrapped] == [META] * 3


def test_wrapper_survives_pickling() -> None:
    wrapped = DeviceDataLoader([torch.ones(1)], torch.device("cpu"))
    restored = pickle.loads(pickle.dumps(wrapped))
    assert restored.device == wrapped.device
    assert len(restored) == 1


class _EpochRecordingSampler(torch.utils.data.Sampler[int]):
    def __init__(self, size: int) -> None:
        self.size, self.epochs = size, []

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(self.size))

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class _EpochCountingStream(IterableDataset):
    def __init__(self) -> None:
        self.epochs: list[int] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(torch.arange(4))

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_set_epoch_and_total_batch_size_as_on_accelerates_loaders() -> None:
    """Callbacks written for accelerate call ``train_dataloader.set_epoch`` and read
    ``total_batch_size``: the sampler (or a streamed dataset) is told the epoch."""
    sampler = _EpochRecordingSampler(6)
    loader = DeviceDataLoader(
        DataLoader(TensorDataset(torch.arange(6)), batch_size=3, sampler=sampler),
        torch.device("cpu"),
    )
    loader.set_epoch(2)
    assert sampler.epochs == [2]
    assert loader.total_batch_size == 3
    stream = _EpochCountingStream()
    DeviceDataLoader(DataLoader(stream, batch_size=2), torch.device("cpu")).set_epoch(1)
    assert stream.epochs == [1]
