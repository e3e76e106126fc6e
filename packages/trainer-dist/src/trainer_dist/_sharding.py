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

With ``split_batches`` (accelerate's option of that name, :class:`ShardingOptions`) a
global step is *one* batch of the original loader, cut into ``P`` equal slices of
``batch_size / P`` rows, slice ``i`` going to process ``i``: the loader's batch size is
then the global batch. Everything else (the two ways of completing the last step, the
gather window) is the same, with a slice in place of a batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, SequentialSampler

from trainer_dist._batches import DeviceDataLoader
from trainer_dist._collectives import apply_nested


@dataclass(frozen=True)
class ShardingOptions:
    """How a distributed runtime shares each data loader's batches among its processes.

    The data-loader options of ``TrainingArguments.accelerator_config`` that change
    which samples a process sees, with accelerate's meaning.

    Attributes:
        split_batches: ``False``: every process gets batches of the loader's batch size
            (the global batch is ``P`` times that). ``True``: the loader's batch is the
            global batch and each process gets a ``1/P`` slice of it, so the batch size
            must be a multiple of the number of processes.
        even_batches: for loaders that draw in a random (training) order, complete an
            incomplete last step with samples from the start of the order so that every
            process gets a full batch (``True``), or deal the real samples only, in
            batches of at most the per-process size, a process left with none getting
            one sample from the start (``False``; every process must still run the
            step). Loaders drawing in sequential order (evaluation, prediction) are
            always dealt that second way, and the runtime's ``gather`` drops the repeated
            rows, so results hold each sample exactly once either way.
    """

    split_batches: bool = False
    even_batches: bool = True

    def check_batch_size(self, batch_size: int | None, num_processes: int, *, name: str) -> None:
        """Refuse a batch size that ``split_batches`` cannot cut into equal slices.

        Args:
            batch_size: the loader's batch size (``None``: unknown, not checked).
            num_processes: processes sharing each batch.
            name: what the batch size is called to the user, for the message.

        Raises:
            ValueError: ``split_batches`` is on and ``batch_size`` is not a multiple of
                ``num_processes``.
        """
        if not self.split_batches or batch_size is None or batch_size % num_processes == 0:
            return
        raise ValueError(
            f"accelerator_config split_batches=True cuts each batch of {name}={batch_size} "
            f"into {num_processes} equal slices, one per process, but {batch_size} is not a "
            f"multiple of {num_processes}. Set {name} to a multiple of {num_processes} (it "
            f"is the global batch under split_batches), or unset split_batches to give every "
            f"process batches of {batch_size}."
        )


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
        if gathered.dim() == 0:
            return gathered
        return self.apply_to_rows(gathered)

    def apply_to_rows(self, gathered: Any) -> Any:
        """Drop padding duplicates from a gathered sequence of rows (a tensor, a list of
        objects) when a padded step is in force and it has the padded step's length."""
        window = self.window
        if window is None or len(gathered) != window.padded_rows:
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
        split_batches: a global step is one original batch, each process taking a
            ``batch_size / num_processes`` slice (else ``num_processes`` whole batches).

    Raises:
        ValueError: ``split_batches`` with a batch size that is not a multiple of
            ``num_processes``.
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
        split_batches: bool = False,
    ) -> None:
        ShardingOptions(split_batches=split_batches).check_batch_size(
            batch_size, num_processes, name="batch_size"
        )
        self.batch_sampler = batch_sampler
        self.even_batches = even_batches
        self.split_batches = split_batches
        self.batch_size = batch_size
        self.num_processes = num_processes
        self.process_index = process_index
        self.drop_last = drop_last
        # A global step: how many original batches, and how many rows each process takes.
        self.batches_per_step = 1 if split_batches else num_processes
        self.rows_per_process = batch_size // num_processes if split_batches else batch_size
        self.padded_steps: dict[int, StepWindow] = {}

    @property
    def total_batch_size(self) -> int:
        """Samples of the original order one global step consumes (all processes)."""
        return self.rows_per_process * self.num_processes

    def __len__(self) -> int:
        batches = len(self.batch_sampler)  # type: ignore[arg-type]  # sized samplers only
        full, rest = divmod(batches, self.batches_per_step)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[list[int]]:
        self.padded_steps.clear()  # the same dict the loader reads
        first_indices: list[int] = []
        step: list[int] = []
        batches = 0
        step_index = 0
        for drawn in self.batch_sampler:
            batch = list(drawn)
            if len(first_indices) < self.total_batch_size:
                first_indices.extend(batch)
            step.extend(batch)
            batches += 1
            if batches == self.batches_per_step:
                if len(step) == self.total_batch_size:
                    start = self.process_index * self.rows_per_process
                    yield step[start : start + self.rows_per_process]
                else:
                    yield self._padded_part(step, first_indices, step_index)
                step, batches, step_index = [], 0, step_index + 1
        if step and not self.drop_last:
            yield self._padded_part(step, first_indices, step_index)

    def _padded_part(self, real: list[int], drawn: list[int], step_index: int) -> list[int]:
        filler = self._pass_start(drawn)
        if not self.even_batches:
            return self._dealt_part(real, filler, step_index)
        total = self.total_batch_size
        padded = list(real)
        source = filler or real
        position = 0
        while len(padded) < total:
            padded.append(source[position % len(source)])
            position += 1
        self.padded_steps[step_index] = StepWindow(real_rows=len(real), padded_rows=total)
        start = self.process_index * self.rows_per_process
        return padded[start : start + self.rows_per_process]

    def _pass_start(self, drawn: list[int]) -> list[int]:
        """The first indices of the pass, for filling: a sampler that can start a pass
        late (a resumed run) tells its whole order (``pass_order``), so the filler is
        the one an uninterrupted pass uses; else the first indices drawn."""
        sampler = getattr(self.batch_sampler, "sampler", None)
        order = getattr(sampler, "pass_order", None)
        if order is None:
            return drawn
        return list(order[: self.total_batch_size])

    def _dealt_part(self, real: list[int], filler: list[int], step_index: int) -> list[int]:
        parts = _dealt_part_impl(real, filler, self.rows_per_process, self.num_processes)
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

    A loader drawing with torch's ``SequentialSampler`` itself (evaluation) gets uneven
    last batches, any other (a training loader, shuffled or in order through a sampler
    subclass) even ones unless ``sharding.even_batches`` is off; see the module docstring.

    ``len()`` is the number of batches this process yields (the same on every process);
    ``dataset``, ``sampler`` (with its ``set_epoch``) and ``batch_size`` are the original
    loader's, so the loop's epoch bookkeeping and example counts keep working;
    ``total_batch_size`` is what one global step takes of the sampler's order (the batch
    size under ``split_batches``, else ``P`` times it), as on accelerate's loaders.
    ``base_dataloader`` is the rebuilt, sharded ``DataLoader``; ``original_dataloader``
    the one that was passed in.

    Args:
        dataloader: a map-style ``DataLoader`` with a batch size.
        device: where batches should land.
        num_processes: processes sharing the data.
        process_index: this process's rank.
        limit: the runtime's :class:`GatherLimit`, set while a padded step is consumed.
        sharding: ``split_batches`` / ``even_batches``; the defaults when ``None``.

    Raises:
        ValueError: ``split_batches`` with a batch size that is not a multiple of
            ``num_processes``.
    """

    def __init__(
        self,
        dataloader: DataLoader,
        device: torch.device,
        *,
        num_processes: int,
        process_index: int,
        limit: GatherLimit,
        sharding: ShardingOptions | None = None,
    ) -> None:
        sharding = sharding or ShardingOptions()
        # torch's own SequentialSampler is what evaluation loaders draw with; a training
        # loader in dataset order uses a subclass (the loop's seekable one) and, like a
        # shuffled one, gets even batches, as the reference's training loaders do.
        sequential = type(dataloader.sampler) is SequentialSampler
        self.shard_sampler = ShardedBatchSampler(
            dataloader.batch_sampler,  # type: ignore[arg-type]  # checked by can_shard
            batch_size=dataloader.batch_size or 1,
            num_processes=num_processes,
            process_index=process_index,
            drop_last=dataloader.drop_last,
            even_batches=sharding.even_batches and not sequential,
            split_batches=sharding.split_batches,
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
        """The original loader's batch size: rows per batch of one process, or the
        global batch under ``split_batches``."""
        return self.original_dataloader.batch_size

    @property
    def total_batch_size(self) -> int:
        """Samples of the sampler's order one global step (all processes) consumes."""
        return self.shard_sampler.total_batch_size

    def _moved_batches(self, batches: Iterator[Any]) -> Iterator[Any]:
        from trainer_dist._batches import move_to_device

        device, non_blocking, limit = self.device, self.non_blocking, self.limit
        padded = self.shard_sampler.padded_steps
        on_cpu = device.type == "cpu"
        try:
            for step, batch in enumerate(batches):
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
    consecutive batches. The rows of an incomplete last group are split evenly, each
    share completed from the stream's first rows when they do not divide by ``P`` (the
    rows accelerate's dispatcher sends); batches that cannot be joined (ragged shapes,
    non-tensor values) are instead completed with the first batches of the stream. The
    gather limit drops the repeated rows from evaluation results. Under
    ``split_batches`` each process instead keeps slice ``i`` of every batch (``P`` equal
    slices of its rows; tensors are sliced along their first dimension, other values
    passed whole, as accelerate does); a short last batch is dealt in slices of the same
    size, and a process left without rows gets the stream's first row, which the gather
    limit drops. The stream must yield the same batches in the same order on every
    process (seed it alike). ``len()`` is known only when the loader has one.

    Raises:
        ValueError: ``split_batches`` with a loader batch size that is not a multiple of
            ``num_processes``.
    """

    def __init__(
        self,
        dataloader: Any,
        device: torch.device,
        *,
        num_processes: int,
        process_index: int,
        limit: GatherLimit,
        sharding: ShardingOptions | None = None,
    ) -> None:
        super().__init__(dataloader, device)
        sharding = sharding or ShardingOptions()
        batch_size = getattr(dataloader, "batch_size", None)
        sharding.check_batch_size(batch_size, num_processes, name="batch_size")
        self.num_processes = num_processes
        self.process_index = process_index
        self.limit = limit
        self.split_batches = sharding.split_batches
        # Rows per process of a full batch under split_batches; None: each batch's rows / P.
        self.rows_per_process = batch_size // num_processes if batch_size else None
        self._passthrough = False

    def __len__(self) -> int:
        if self.split_batches:
            return len(self.base_dataloader)
        full, rest = divmod(len(self.base_dataloader), self.num_processes)
        return full + (1 if rest else 0)

    @property
    def total_batch_size(self) -> int | None:
        """Samples one global step takes from the stream (None: the loader has no batch size)."""
        batch_size = getattr(self.base_dataloader, "batch_size", None)
        if not batch_size:
            return None
        return batch_size if self.split_batches else batch_size * self.num_processes

    def _moved_batches(self, batches: Iterator[Any]) -> Iterator[Any]:
        from trainer_dist._batches import move_to_device

        parts = self._split_parts(batches) if self.split_batches else self._dealt_parts(batches)
        try:
            for part in parts:
                yield move_to_device(part, self.device)
        finally:
            self.limit.window = None

    def _dealt_parts(self, batches: Iterator[Any]) -> Iterator[Any]:
        first_group: list[Any] = []
        group: list[Any] = []
        # A complete group is held until the next batch shows it is not the last: the
        # last one may end with a short batch, and is then split as the dispatcher does.
        held: list[Any] | None = None
        for batch in batches:
            if held is not None:
                yield held[self.process_index]
                held = None
            group.append(batch)
            if len(first_group) < self.num_processes:
                first_group.append(batch)
            if len(group) == self.num_processes:
                held, group = group, []
        if held is not None or group:
            yield self._pad_last(held or group, first_group)

    def _split_parts(self, batches: Iterator[Any]) -> Iterator[Any]:
        filler: Any = None
        for batch in batches:
            rows = _rows(batch)
            if filler is None:
                filler = _slice_rows(batch, 0, 1)
            per = self.rows_per_process or math.ceil(rows / self.num_processes)
            bounds = [
                (min(i * per, rows), min((i + 1) * per, rows)) for i in range(self.num_processes)
            ]
            padded_rows = sum(max(stop - begin, 1) for begin, stop in bounds)
            uneven = padded_rows != rows
            self.limit.window = StepWindow(rows, padded_rows) if uneven else None
            begin, stop = bounds[self.process_index]
            yield _slice_rows(batch, begin, stop) if stop > begin else filler

    def _pad_last(self, group: list[Any], first_group: list[Any]) -> Any:
        real_rows = sum(_rows(batch) for batch in group)
        rows, first_rows = _concat_rows(group), _concat_rows(first_group)
        if rows is not None and first_rows is not None:
            return self._split_last(rows, real_rows, first_rows)
        if len(group) == self.num_processes:
            return group[self.process_index]
        padded = list(group)
        position = 0
        while len(padded) < self.num_processes:
            padded.append(first_group[position % len(first_group)])
            position += 1
        self.limit.window = StepWindow(
            real_rows=real_rows, padded_rows=sum(_rows(batch) for batch in padded)
        )
        return padded[self.process_index]

    def _split_last(self, rows: Any, real_rows: int, first_rows: Any) -> Any:
        """This process's share of the last group (short, or ending with a short batch),
        as accelerate's dispatcher deals it: the rows are split evenly, and when they do
        not divide by ``P`` each share grows by one row, from the stream's first rows.

        Dealing whole batches instead (the first batches as filler) would give a process
        a short or a repeated full batch, so the last training step would weigh samples
        differently from the reference's."""
        per, rest = divmod(real_rows, self.num_processes)
        if rest:
            per += 1
            rows = _concat_rows([rows, _slice_rows(first_rows, 0, self.num_processes)])
        padded_rows = per * self.num_processes
        uneven = padded_rows != real_rows
        self.limit.window = StepWindow(real_rows, padded_rows) if uneven else None
        begin = self.process_index * per
        return _slice_rows(rows, begin, begin + per)


class _Ragged(Exception):
    """Batches whose rows cannot be joined into one batch."""


def _concat_rows(batches: list[Any]) -> Any | None:
    """The rows of ``batches`` joined into one batch of the same structure, or ``None``
    when they cannot be (a non-tensor value, a 0-d tensor, other trailing shapes, as
    dynamically padded sequences have): such streams keep being dealt batch by batch."""
    try:
        return _join(batches)
    except _Ragged:
        return None


def _join(batches: list[Any]) -> Any:
    first = batches[0]
    if isinstance(first, torch.Tensor):
        same = all(
            isinstance(b, torch.Tensor) and b.dim() and b.shape[1:] == first.shape[1:]
            for b in batches
        )
        if not (first.dim() and same):
            raise _Ragged
        return torch.cat(batches)
    if isinstance(first, Mapping):
        if not all(isinstance(b, Mapping) and b.keys() == first.keys() for b in batches):
            raise _Ragged
        joined = {key: _join([b[key] for b in batches]) for key in first}
        try:
            return joined if type(first) is dict else type(first)(joined)  # type: ignore[call-arg]  # most mappings take a dict
        except TypeError:
            return joined
    if isinstance(first, (list, tuple)):
        if not all(type(b) is type(first) and len(b) == len(first) for b in batches):
            raise _Ragged
        items = [_join([b[i] for b in batches]) for i in range(len(first))]
        if isinstance(first, tuple) and hasattr(first, "_fields"):  # a named tuple
            return type(first)(*items)
        return type(first)(items)
    raise _Ragged


def _slice_rows(batch: Any, begin: int, stop: int) -> Any:
    """Rows ``begin:stop`` of every tensor in ``batch`` that has rows (others kept whole)."""
    return apply_nested(batch, lambda t: t[begin:stop] if t.dim() else t)
