"""Sharding a DataLoader across processes without losing or duplicating samples in results.

Every process builds the same index order (same sampler, same seeded generator), then
takes its part of each *global step*: the ``P`` consecutive batches of the original
loader (``P`` = number of processes), batch ``i`` going to process ``i``. So a global
step of ``P`` processes covers exactly the samples one process would see with a batch
``P`` times larger, in the same order: concatenating the processes' batches in rank order
gives back the original sequence.

The last global step is usually incomplete, and every process must still run it
(collectives would otherwise hang). Two ways of completing it:

* *even batches* (shuffled, training loaders): the step is filled up with samples from the
  start of the order and every process gets a full batch, as the reference does;
* *uneven batches* (sequential, evaluation loaders): the real samples are dealt in
  batches of at most ``batch_size``, so a process may get a short batch, and a process
  left with none gets one filler sample. Batch-mean losses then cover real samples only,
  so a gathered evaluation loss equals the one-process value.

Duplicates must not reach evaluation results: the loader records how many of the step's
rows are real (always a prefix of the rank-ordered concatenation), and the runtime's
``gather`` keeps only those rows for the gathers of that step (:class:`StepWindow`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, SequentialSampler

from trainer_dist._batches import DeviceDataLoader


@dataclass
class StepWindow:
    """The gather truncation in force while a padded last step is being consumed.

    Attributes:
        real_rows: rows of the global step that are real samples (a prefix of the
            rank-ordered concatenation).
        padded_rows: rows of the global step once padded; a gathered tensor is truncated
            only when its first dimension equals this, so gathers of unrelated tensors in
            the same step pass through untouched.
    """

    real_rows: int
    padded_rows: int


class GatherLimit:
    """Shared between a runtime and the loaders it prepared: the window in force, if any."""

    __slots__ = ("window",)

    def __init__(self) -> None:
        self.window: StepWindow | None = None

    def apply(self, gathered: torch.Tensor) -> torch.Tensor:
        """Drop padding duplicates from ``gathered`` when a padded step is in force."""
        window = self.window
        if window is None or gathered.dim() == 0 or gathered.shape[0] != window.padded_rows:
            return gathered
        return gathered[: window.real_rows]


class ShardedBatchSampler:
    """This process's batches of ``batch_sampler``, padded so that every process has as many.

    Args:
        batch_sampler: the original loader's batch sampler (lists of indices).
        batch_size: rows per batch (the original loader's ``batch_size``).
        num_processes: processes sharing the data.
        process_index: this process's rank.
        drop_last: drop an incomplete last global step instead of padding it.
        even_batches: complete the last step to full batches (else deal real samples,
            with one filler sample for a process left without any).
    """

    def __init__(
        self,
        batch_sampler: Iterable[list[int]],
        *,
        batch_size: int,
        num_processes: int,
        process_index: int,
        drop_last: bool,
        even_batches: bool = True,
    ) -> None:
        self.batch_sampler = batch_sampler
        self.even_batches = even_batches
        self.batch_size = batch_size
        self.num_processes = num_processes
        self.process_index = process_index
        self.drop_last = drop_last
        self.padded_steps: dict[int, StepWindow] = {}

    def __len__(self) -> int:
        batches = len(self.batch_sampler)  # type: ignore[arg-type]  # sized samplers only
        full, rest = divmod(batches, self.num_processes)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[list[int]]:
        self.padded_steps.clear()  # the same dict the loader reads
        first_indices: list[int] = []
        step: list[list[int]] = []
        step_index = 0
        for drawn in self.batch_sampler:
            batch = list(drawn)
            if len(first_indices) < self.batch_size * self.num_processes:
                first_indices.extend(batch)
            step.append(batch)
            if len(step) == self.num_processes:
                if self._is_complete(step):
                    yield step[self.process_index]
                else:
                    yield self._padded_part(step, first_indices, step_index)
                step, step_index = [], step_index + 1
        if step and not self.drop_last:
            yield self._padded_part(step, first_indices, step_index)

    def _is_complete(self, step: list[list[int]]) -> bool:
        return all(len(batch) == self.batch_size for batch in step)

    def _padded_part(self, step: list[list[int]], filler: list[int], step_index: int) -> list[int]:
        real = [index for batch in step for index in batch]
        if not self.even_batches:
            return self._dealt_part(real, filler, step_index)
        total = self.batch_size * self.num_processes
        padded = list(real)
        source = filler or real
        position = 0
        while len(padded) < total:
            padded.append(source[position % len(source)])
            position += 1
        self.padded_steps[step_index] = StepWindow(real_rows=len(real), padded_rows=total)
        start = self.process_index * self.batch_size
        return padded[start : start + self.batch_size]

    def _dealt_part(self, real: list[int], filler: list[int], step_index: int) -> list[int]:
        parts = _dealt_part_impl(real, filler, self.batch_size, self.num_processes)
        padded_rows = sum(len(part) for part in parts)
        self.padded_steps[step_index] = StepWindow(real_rows=len(real), padded_rows=padded_rows)
        return parts[self.process_index]


def _dealt_part_impl(
    real: list[int], filler: list[int], batch_size: int, processes: int
) -> list[list[int]]:
    chunks = [real[i * batch_size : (i + 1) * batch_size] for i in range(processes)]
    spare = (filler or real)[:1]
    return [chunk if chunk else list(spare) for chunk in chunks]


def rebuild_loader(loader: DataLoader, batch_sampler: Any) -> DataLoader:
    """A DataLoader like ``loader`` (dataset, collate, workers) drawn by ``batch_sampler``."""
    kwargs: dict[str, Any] = {
        "collate_fn": loader.collate_fn,
        "num_workers": loader.num_workers,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)


class ShardedDataLoader(DeviceDataLoader):
    """This process's share of a DataLoader, on the runtime's device.

    A loader drawing with a ``SequentialSampler`` (evaluation) gets uneven last batches,
    any other (a shuffled training loader) even ones; see the module docstring.

    ``len()`` is the number of batches this process yields (the same on every process);
    ``dataset``, ``sampler`` (with its ``set_epoch``) and ``batch_size`` are the original
    loader's, so the loop's epoch bookkeeping and example counts keep working.
    ``base_dataloader`` is the rebuilt, sharded ``DataLoader``; ``original_dataloader``
    the one that was passed in.

    Args:
        dataloader: a map-style ``DataLoader`` with a batch size.
        device: where batches should land.
        num_processes: processes sharing the data.
        process_index: this process's rank.
        limit: the runtime's :class:`GatherLimit`, set while a padded step is consumed.
    """

    def __init__(
        self,
        dataloader: DataLoader,
        device: torch.device,
        *,
        num_processes: int,
        process_index: int,
        limit: GatherLimit,
    ) -> None:
        self.shard_sampler = ShardedBatchSampler(
            dataloader.batch_sampler,  # type: ignore[arg-type]  # checked by can_shard
            batch_size=dataloader.batch_size or 1,
            num_processes=num_processes,
            process_index=process_index,
            drop_last=dataloader.drop_last,
            even_batches=not isinstance(dataloader.sampler, SequentialSampler),
        )
        super().__init__(rebuild_loader(dataloader, self.shard_sampler), device)
        self.original_dataloader = dataloader
        self.limit = limit
        self._passthrough = False  # batches must be counted to find the padded step

    @property
    def dataset(self) -> Any:
        """The original dataset (all samples, not this process's share)."""
        return self.original_dataloader.dataset

    @property
    def sampler(self) -> Any:
        """The original sampler; ``set_epoch`` on it reshuffles every process alike."""
        return self.original_dataloader.sampler

    @property
    def batch_size(self) -> int | None:
        """Rows per batch of one process."""
        return self.original_dataloader.batch_size

    def _moved_batches(self) -> Iterator[Any]:
        from trainer_dist._batches import move_to_device

        device, non_blocking, limit = self.device, self.non_blocking, self.limit
        padded = self.shard_sampler.padded_steps
        on_cpu = device.type == "cpu"
        try:
            for step, batch in enumerate(self.base_dataloader):
                limit.window = padded.get(step)
                yield batch if on_cpu else move_to_device(batch, device, non_blocking=non_blocking)
                limit.window = None
        finally:
            limit.window = None


def can_shard(dataloader: Any) -> bool:
    """Whether ``dataloader`` is a map-style ``DataLoader`` batched by a batch sampler."""
    return (
        isinstance(dataloader, DataLoader)
        and not isinstance(dataloader.dataset, IterableDataset)
        and dataloader.batch_sampler is not None
        and dataloader.batch_size is not None
    )


def _rows(batch: Any) -> int:
    """Rows of a batch: the first dimension of its first tensor (1 when it has none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    values = batch.values() if isinstance(batch, dict) else batch
    if isinstance(values, (list, tuple)) or hasattr(values, "__iter__"):
        for value in values:
            if isinstance(value, torch.Tensor):
                return _rows(value)
    return 1


class DealtDataLoader(DeviceDataLoader):
    """Batch-level sharding for loaders that cannot be re-sampled (streams, custom samplers).

    Every process iterates the whole loader and keeps batch ``i`` of each group of ``P``
    consecutive batches; an incomplete last group is completed with the first batches of
    the stream, and the gather limit drops those rows from evaluation results. The stream
    must yield the same batches in the same order on every process (seed it alike).
    ``len()`` is known only when the loader has one.
    """

    def __init__(
        self,
        dataloader: Any,
        device: torch.device,
        *,
        num_processes: int,
        process_index: int,
        limit: GatherLimit,
    ) -> None:
        super().__init__(dataloader, device)
        self.num_processes = num_processes
        self.process_index = process_index
        self.limit = limit
        self._passthrough = False

    def __len__(self) -> int:
        full, rest = divmod(len(self.base_dataloader), self.num_processes)
        return full + (1 if rest else 0)

    def _moved_batches(self) -> Iterator[Any]:
        from trainer_dist._batches import move_to_device

        first_group: list[Any] = []
        group: list[Any] = []
        try:
            for batch in self.base_dataloader:
                group.append(batch)
                if len(first_group) < self.num_processes:
                    first_group.append(batch)
                if len(group) == self.num_processes:
                    yield move_to_device(group[self.process_index], self.device)
                    group = []
            if group:
                yield move_to_device(self._pad_last(group, first_group), self.device)
        finally:
            self.limit.window = None

    def _pad_last(self, group: list[Any], first_group: list[Any]) -> Any:
        real_rows = sum(_rows(batch) for batch in group)
        padded = list(group)
        position = 0
        while len(padded) < self.num_processes:
            padded.append(first_group[position % len(first_group)])
            position += 1
        self.limit.window = StepWindow(
            real_rows=real_rows, padded_rows=sum(_rows(batch) for batch in padded)
        )
        return padded[self.process_index]
