"""The samplers and dataset shards of ``transformers.trainer_pt_utils``.

User scripts and subclasses that build their own distributed loaders (an overridden
``_get_train_sampler``, a custom ``get_eval_dataloader``) construct these. The Trainer's
own loaders are sharded by the runtime (trainer-dist) instead, which deals whole batches
of one global order to the processes; these classes keep the reference's per-process
orders because user code written against it expects exactly those indices.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, IterableDataset, Sampler

logger = logging.getLogger(__name__)

_MAX_MEGABATCH_MULT = 50


def get_length_grouped_indices(
    lengths: Sequence[int],
    batch_size: int,
    mega_batch_mult: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """A random order in which each run of ``batch_size`` indices has similar lengths.

    A permutation drawn from ``generator`` is cut into megabatches of
    ``mega_batch_mult * batch_size`` indices (by default ``mega_batch_mult`` is
    ``len(lengths) // (4 * batch_size)``, clamped to 1..50), each megabatch is sorted by
    decreasing length, and the longest example overall is swapped to the front, so an
    out-of-memory error shows on the first batch rather than hours in.
    """
    count = len(lengths)
    if mega_batch_mult is None:
        mega_batch_mult = max(1, min(count // (batch_size * 4), _MAX_MEGABATCH_MULT))
    size = mega_batch_mult * batch_size
    order = torch.randperm(count, generator=generator).tolist()
    heads = range(0, count, size)
    for head in heads:
        order[head : head + size] = sorted(
            order[head : head + size], key=lengths.__getitem__, reverse=True
        )
    if count:
        longest = max(heads, key=lambda head: lengths[order[head]])  # the first one on ties
        order[0], order[longest] = order[longest], order[0]
    return order


def _lengths_of(
    dataset: Any, lengths: Sequence[int] | torch.Tensor | None, model_input_name: str | None
) -> list[int]:
    """The lengths given, or those of each item's ``model_input_name`` sequence."""
    if lengths is not None:
        if isinstance(lengths, torch.Tensor):
            logger.info("Converting the lengths tensor to a list of ints (a list is faster).")
            return lengths.tolist()
        return list(lengths)
    if dataset is None:
        raise ValueError("Pass the examples' lengths=[...] or a dataset to measure them in.")
    name = model_input_name if model_input_name is not None else "input_ids"
    if not isinstance(dataset[0], Mapping) or name not in dataset[0]:
        raise ValueError(
            f"Cannot measure the lengths of a dataset whose items are not dicts with a {name!r} "
            f"key (the first is a {type(dataset[0]).__name__}); pass lengths=[...] or the "
            "model_input_name to measure."
        )
    return [len(item[name]) for item in dataset]


def _default_process(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """``num_replicas`` and ``rank``, read from the default process group when None.

    Raises:
        RuntimeError: torch was built without distributed support.
        ValueError: No default process group was initialised (from ``torch.distributed``).
    """
    if (num_replicas is None or rank is None) and not dist.is_available():
        raise RuntimeError(
            "num_replicas and rank are read from torch.distributed, which this torch build "
            "lacks; pass them."
        )
    return (
        dist.get_world_size() if num_replicas is None else num_replicas,
        dist.get_rank() if rank is None else rank,
    )


def _whole_batches(count: int, batch_size: int, drop_last: bool) -> int:
    """Batches of ``batch_size`` in ``count`` items: full ones only with ``drop_last``."""
    return count // batch_size if drop_last else -(-count // batch_size)


def _filled(indices: list[int], total: int) -> list[int]:
    """``indices`` repeated from the start until there are ``total``, or cut to ``total``."""
    while len(indices) < total:
        indices = indices + indices[: total - len(indices)]
    return indices[:total]


class DistributedLengthGroupedSampler(DistributedSampler):
    """This process's share of a :func:`get_length_grouped_indices` order.

    Every process draws the same order from ``seed + epoch`` (call ``set_epoch`` each
    epoch) and takes every ``num_replicas``-th index from ``rank``. Without
    ``drop_last`` the order is padded from its start to a multiple of ``num_replicas``;
    with it, the tail is cut.

    Raises:
        ValueError: Neither ``dataset`` nor ``lengths`` is given, the items cannot be
            measured, or ``num_replicas`` / ``rank`` are None without a process group.
    """

    def __init__(
        self,
        batch_size: int,
        dataset: Any = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
        drop_last: bool = False,
        lengths: Sequence[int] | torch.Tensor | None = None,
        model_input_name: str | None = None,
    ) -> None:
        # DistributedSampler.__init__ needs a sized dataset; only its set_epoch is reused.
        self.num_replicas, self.rank = _default_process(num_replicas, rank)
        self.batch_size = batch_size
        self.epoch = 0
        self.seed = seed
        self.drop_last = drop_last
        self.lengths = _lengths_of(dataset, lengths, model_input_name)
        count = len(self.lengths)
        if drop_last and count % self.num_replicas:
            self.num_samples = math.ceil((count - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(count / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)
        order = _filled(order, self.total_size)
        return iter(order[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class DistributedSamplerWithLoop(DistributedSampler):
    """A ``DistributedSampler`` whose share is a whole number of ``batch_size`` batches.

    The share is completed with its own first indices (skipping the one the base
    sampler already repeated to even out the processes), so no process gets a short
    last batch. Other keyword arguments go to ``DistributedSampler``.
    """

    def __init__(self, dataset: Any, batch_size: int, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        missing = -len(indices) % self.batch_size
        # Ranks below len % num_replicas got no repeated sample: they may reuse index 0.
        start = 1 if self.rank < len(self.dataset) % self.num_replicas else 0  # type: ignore[arg-type]  # sized
        return iter(indices + indices[start : start + missing])


class SequentialDistributedSampler(Sampler[int]):
    """Consecutive, equal shares of the dataset in order, one per process.

    For evaluation: gathering every process's outputs in rank order rebuilds the
    dataset's order, and the repeated samples at the end are cut with
    ``num_total_examples``. The dataset is padded from its start to ``num_replicas``
    equal shares (each a multiple of ``batch_size`` when given).
    The reference deprecated it (``ShardSampler`` replaces it); it is kept for the code
    that still uses it, without the deprecation warning.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.num_replicas, self.rank = _default_process(num_replicas, rank)
        self.dataset = dataset
        self.batch_size = batch_size
        count = len(dataset)
        if batch_size is None:
            self.num_samples = math.ceil(count / self.num_replicas)
        else:
            self.num_samples = math.ceil(count / (batch_size * self.num_replicas)) * batch_size
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        indices = _filled(list(range(len(self.dataset))), self.total_size)
        return iter(indices[self.rank * self.num_samples : (self.rank + 1) * self.num_samples])

    def __len__(self) -> int:
        return self.num_samples


class ShardSampler(Sampler[int]):
    """This process's batches of the dataset in order, the processes taking turns.

    With 2 processes and ``batch_size`` 4, process 0 yields 0-3, 8-11, ... and process 1
    yields 4-7, 12-15, ...: each global batch of ``batch_size * num_processes`` is split
    between them. The dataset is padded from its start to whole global batches, or,
    with ``drop_last``, its incomplete last global batch is dropped.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        drop_last: bool = False,
        num_processes: int = 1,
        process_index: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.num_processes = num_processes
        self.process_index = process_index
        self.total_batch_size = batch_size * num_processes
        batches = _whole_batches(len(dataset), self.total_batch_size, drop_last)
        self.total_num_samples = batches * self.total_batch_size

    def __iter__(self) -> Iterator[int]:
        indices = _filled(list(range(len(self.dataset))), self.total_num_samples)
        first = self.batch_size * self.process_index
        shard: list[int] = []
        for start in range(first, self.total_num_samples, self.total_batch_size):
            shard.extend(indices[start : start + self.batch_size])
        return iter(shard)

    def __len__(self) -> int:
        return self.total_num_samples // self.num_processes


class IterableDatasetShard(IterableDataset):
    """This process's share of an ``IterableDataset``: its slice of every global batch.

    The stream is read in global batches of ``batch_size * num_processes`` items and
    this process yields its ``batch_size`` of each, so every process sees as many whole
    batches. A last incomplete global batch is completed with items from the first one
    (or dropped with ``drop_last``). For a dataset that shuffles, give it a
    ``torch.Generator`` as its ``generator`` attribute (or a ``set_epoch`` method): it
    is seeded with ``seed + epoch`` on every process, so all draw the same order.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        drop_last: bool = False,
        num_processes: int = 1,
        process_index: int = 0,
        seed: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.num_processes = num_processes
        self.process_index = process_index
        self.seed = seed
        self.epoch = 0
        self.num_examples = 0  # items read from the dataset in the current pass

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for the next pass, and pass it on to the dataset if it takes it."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def _seed_dataset(self) -> None:
        generator = getattr(self.dataset, "generator", None)
        if not hasattr(self.dataset, "set_epoch") and isinstance(generator, torch.Generator):
            generator.manual_seed(self.seed + self.epoch)

    def __iter__(self) -> Iterator[Any]:
        self.num_examples = 0
        self._seed_dataset()
        global_size = self.batch_size * self.num_processes
        mine = slice(
            self.process_index * self.batch_size, (self.process_index + 1) * self.batch_size
        )
        first: list[Any] | None = None
        batch: list[Any] = []
        for item in self.dataset:
            self.num_examples += 1
            batch.append(item)
            if len(batch) == global_size:
                yield from batch[mine]
                first = first if first is not None else batch
                batch = []
        if batch and not self.drop_last:
            filler = first if first is not None else list(batch)
            while len(batch) < global_size:
                batch += filler
            yield from batch[mine]

    def __len__(self) -> int:
        """Items this process yields per pass (needs a sized dataset)."""
        global_size = self.batch_size * self.num_processes
        return _whole_batches(len(self.dataset), global_size, self.drop_last) * self.batch_size


def get_dataloader_sampler(dataloader: Any) -> Any:
    """The sampler under ``dataloader``, looking through its batch sampler (if any), so
    that code can call its ``set_epoch``."""
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    if batch_sampler is not None:
        return get_dataloader_sampler(batch_sampler)
    return getattr(dataloader, "sampler", None)
