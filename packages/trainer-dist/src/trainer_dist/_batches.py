"""Putting batches on the device the model computes on.

A dataloader yields batches on the CPU; the runtime wraps it in :class:`DeviceDataLoader`
so that the loop receives them on the runtime's device without knowing which device that
is. On the CPU the wrapper hands out the underlying iterator itself, so it costs nothing
per batch there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch


def move_to_device(data: Any, device: torch.device | str, *, non_blocking: bool = False) -> Any:
    """Return ``data`` with every tensor in it moved to ``device``.

    Tensors nested in mappings (``dict``, ``BatchEncoding``...), lists, tuples and named
    tuples are moved and the containers rebuilt with their own type (a mapping type that
    cannot be rebuilt from a dict becomes a ``dict``); anything else (strings, numbers,
    ``None``, numpy arrays) is returned as it is. A tensor already on ``device`` is
    returned unchanged, without a copy.

    Args:
        data: a tensor or a nested structure of tensors.
        device: where the tensors should go.
        non_blocking: copy asynchronously; only useful from pinned CPU memory to a GPU.
    """
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, Mapping):
        moved = {
            key: move_to_device(value, device, non_blocking=non_blocking)
            for key, value in data.items()
        }
        return _rebuild_mapping(data, moved)
    if isinstance(data, (list, tuple)):
        items = [move_to_device(item, device, non_blocking=non_blocking) for item in data]
        if isinstance(data, tuple) and hasattr(data, "_fields"):  # a named tuple
            return type(data)(*items)
        return type(data)(items)
    return data


def holds_tensor(data: Any) -> bool:
    """Whether ``data`` is a tensor or a dict / list / tuple with one somewhere inside:
    what decides between gathering tensors and gathering Python objects."""
    if isinstance(data, torch.Tensor):
        return True
    if isinstance(data, Mapping):
        return any(holds_tensor(value) for value in data.values())
    if isinstance(data, (list, tuple)):
        return any(holds_tensor(item) for item in data)
    return False


def _rebuild_mapping(original: Mapping[Any, Any], moved: dict[Any, Any]) -> Mapping[Any, Any]:
    if type(original) is dict:
        return moved
    try:
        return type(original)(moved)  # type: ignore[call-arg]  # most mapping types take a dict
    except TypeError:
        return moved


class DeviceDataLoader:
    """A dataloader whose batches arrive on ``device``.

    Iterating it iterates the wrapped dataloader and moves each batch with
    :func:`move_to_device` (``non_blocking`` when the loader pins memory and the device is
    a GPU). ``len()`` and every other attribute (``dataset``, ``sampler``,
    ``batch_size``, ...) are the wrapped dataloader's, so code that inspects a
    ``DataLoader`` keeps working; ``isinstance(x, DataLoader)`` does not hold, use
    :attr:`base_dataloader` for that.

    Args:
        dataloader: any iterable of batches (usually a ``torch.utils.data.DataLoader``).
        device: where batches should land.
    """

    def __init__(self, dataloader: Any, device: torch.device) -> None:
        self.base_dataloader = dataloader
        self.device = device
        self.non_blocking = bool(getattr(dataloader, "pin_memory", False)) and device.type == "cuda"
        self._passthrough = device.type == "cpu"

    def __iter__(self) -> Iterator[Any]:
        # The wrapped iterator is made now, not at the first batch: creating it draws its
        # base seed from torch's global generator, and a resumed run restores that
        # generator right after iter(); a lazy draw would shift dropout after a resume.
        batches = iter(self.base_dataloader)
        if self._passthrough:  # batches are built on the CPU already
            return batches
        return self._moved_batches(batches)

    def _moved_batches(self, batches: Iterator[Any]) -> Iterator[Any]:
        device, non_blocking = self.device, self.non_blocking
        for batch in batches:
            yield move_to_device(batch, device, non_blocking=non_blocking)

    def __len__(self) -> int:
        return len(self.base_dataloader)

    @property
    def total_batch_size(self) -> int | None:
        """Samples one step takes (accelerate's loaders have it; one process: the batch size)."""
        return getattr(self.base_dataloader, "batch_size", None)

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``, as accelerate's loaders do when a callback asks.

        The loop already calls ``sampler.set_epoch`` at each epoch; callbacks written for
        accelerate call this on the ``train_dataloader`` they are given. A wrapped loader
        with its own ``set_epoch`` is told, else the sampler, else a dataset that counts
        epochs (a streamed one).
        """
        own = getattr(self.base_dataloader, "set_epoch", None)
        if callable(own):  # a loader of the user's that keeps its own epochs
            own(epoch)
            return
        sampler = getattr(self, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(epoch)
            return
        dataset = getattr(self, "dataset", None)
        if callable(getattr(dataset, "set_epoch", None)):
            dataset.set_epoch(epoch)

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on the wrapper itself. Reading through __dict__
        # avoids infinite recursion while the object is being unpickled or copied.
        base = self.__dict__.get("base_dataloader")
        if base is None:
            raise AttributeError(name)
        return getattr(base, name)

    def __repr__(self) -> str:
        return f"DeviceDataLoader({self.base_dataloader!r}, device={self.device})"
