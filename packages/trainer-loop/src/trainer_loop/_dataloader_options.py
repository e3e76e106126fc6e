"""DataLoader options read from the training arguments, worker seeding, dataset sizes.

The Trainer builds its train, evaluation and test loaders from the same few arguments
(``dataloader_num_workers``, ``dataloader_pin_memory``, ``dataloader_drop_last``, the
newer ``dataloader_persistent_workers`` / ``dataloader_prefetch_factor``, and transformers
5's ``dataloader_multiprocessing_context`` / ``dataloader_in_order``). This module turns
them into keyword arguments for :class:`torch.utils.data.DataLoader`, leaving out the ones
torch rejects in a given configuration, so that each ``get_*_dataloader`` stays a few lines.

Choices where the reference is silent, recorded here and in the package docs:

* ``dataloader_drop_last`` applies to every loader over a map-style dataset, evaluation
  and test included, as in the reference Trainer (which passes it to all three); the
  Trainer keeps the last batch of a stream (``IterableDataset``), as the reference does.
* Memory pinning is requested only when torch sees an accelerator that supports it; on a
  CPU-only machine pinning does nothing and torch would warn on every loader.
* ``dataloader_multiprocessing_context`` and ``dataloader_in_order`` only concern worker
  processes, and are passed only when there are some: torch refuses a start method
  without workers (transformers passes it and fails), and the order of one process's
  batches is always its own.
* Worker processes are reseeded for training and evaluation loaders alike, with a seed
  that differs per worker and per process rank, so random transforms in ``__getitem__``
  are repeatable and not duplicated across ranks.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Sized
from typing import Any

import numpy as np
import torch

__all__ = ["WorkerSeeder", "dataloader_kwargs", "has_length", "is_hf_dataset", "num_examples"]

_SEED_MODULUS = 2**32


def is_hf_dataset(dataset: object) -> bool:
    """A map-style ``datasets.Dataset`` (columns dropped up front, a length column read).

    Streaming ``datasets.IterableDataset``s are not: their examples are filtered in the
    collator, like those of any other dataset.
    """
    datasets = sys.modules.get("datasets")  # an object cannot be one if never imported
    return datasets is not None and isinstance(dataset, datasets.Dataset)


def has_length(dataset: object) -> bool:
    """Tell whether ``len(dataset)`` works.

    Why: map-style datasets can be sampled and counted; streams (``IterableDataset``,
    generators, ``datasets.IterableDataset``) cannot, and the loop must then rely on
    ``max_steps``. Some objects define ``__len__`` but raise ``TypeError`` from it (a
    0-d tensor, an iterable dataset that refuses), so this calls it rather than checking
    for the attribute.

    Args:
        dataset: Any object.

    Returns:
        True when ``len(dataset)`` returns a number.
    """
    if not isinstance(dataset, Sized):
        return False
    try:
        len(dataset)
    except (TypeError, NotImplementedError):
        return False
    return True


def num_examples(dataloader: Any, *, batch_size: int | None = None) -> int:
    """Count the examples a DataLoader yields in one pass.

    The dataset's length is exact and used when available. Otherwise the count is
    estimated as ``len(dataloader) * batch_size``, which overcounts by at most one
    partial batch; ``batch_size`` defaults to the loader's own.

    Args:
        dataloader: A ``torch.utils.data.DataLoader`` or any object with ``dataset`` /
            ``batch_size`` attributes (accelerate's wrapped loaders qualify).
        batch_size: Examples per batch to use for the estimate, overriding the loader's.

    Returns:
        The number of examples.

    Raises:
        TypeError: Neither the dataset nor the loader has a length, so the number of
            examples is unknown (a stream); set ``max_steps`` instead of counting epochs.
    """
    dataset = getattr(dataloader, "dataset", None)
    if dataset is not None and has_length(dataset):
        return len(dataset)
    per_batch = batch_size if batch_size is not None else _loader_batch_size(dataloader)
    if per_batch is None or not has_length(dataloader):
        raise TypeError(
            f"Cannot count the examples of {type(dataloader).__name__}: neither its dataset "
            f"({type(dataset).__name__}) nor the loader has a length. Streaming datasets "
            "have no epoch size; set max_steps instead of num_train_epochs."
        )
    return len(dataloader) * per_batch


def _loader_batch_size(dataloader: Any) -> int | None:
    size = getattr(dataloader, "batch_size", None)
    if size is None:
        size = getattr(getattr(dataloader, "batch_sampler", None), "batch_size", None)
    return size


class WorkerSeeder:
    """``worker_init_fn`` that seeds ``random``, NumPy and torch inside each worker.

    torch gives worker ``i`` the seed ``base_seed + i``, where ``base_seed`` is drawn from
    the main process's generator. Processes of a distributed run are seeded alike, so
    without an offset every rank's workers would make the same random choices. The
    seeder adds ``rank * num_workers``, which keeps seeds unique across ranks and workers.

    A plain class (not a closure) so that it pickles for the ``spawn`` and ``forkserver``
    start methods.

    Args:
        num_workers: Workers per process (``dataloader_num_workers``).
        rank: Index of this process among all training processes.
    """

    def __init__(self, num_workers: int, rank: int = 0) -> None:
        self.num_workers = num_workers
        self.rank = rank

    def __call__(self, worker_id: int) -> None:
        """Seed the three generators of the current worker process."""
        seed = (torch.initial_seed() + self.rank * self.num_workers) % _SEED_MODULUS
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def __repr__(self) -> str:
        return f"WorkerSeeder(num_workers={self.num_workers}, rank={self.rank})"


def seed_worker(worker_id: int, num_workers: int = 0, rank: int = 0) -> None:
    """Seed ``random``, NumPy and torch in a data-loader worker, as :class:`WorkerSeeder`.

    The function form that loader overrides written for the reference pass as
    ``worker_init_fn``: bare (v4.34 called it with the worker id only, so ``rank`` and
    ``num_workers`` stay 0) or as ``functools.partial(seed_worker, num_workers=N,
    rank=R)`` (transformers 5).
    """
    WorkerSeeder(num_workers, rank)(worker_id)


def dataloader_kwargs(args: Any, *, training: bool, rank: int | None = None) -> dict[str, Any]:
    """Build the DataLoader keyword arguments that come from the training arguments.

    The caller adds ``batch_size``, ``collate_fn`` and ``sampler``. Options torch only
    accepts with worker processes (``persistent_workers``, ``prefetch_factor``,
    ``worker_init_fn``, ``multiprocessing_context``, ``in_order``) are included only when
    ``dataloader_num_workers > 0``.

    Args:
        args: ``TrainingArguments`` or any object with the same attribute names; a missing
            attribute takes the reference default.
        training: Whether the loader feeds training. Both kinds get the same options
            today (``dataloader_drop_last`` applies to evaluation too, as in the
            reference); the flag keeps call sites explicit and lets the two diverge.
        rank: Process index used to decorrelate worker seeds across processes; defaults
            to ``args.process_index`` when present, else 0.

    Returns:
        A dict ready to be splatted into ``torch.utils.data.DataLoader``.

    Raises:
        ValueError: ``dataloader_num_workers`` is negative, or ``dataloader_prefetch_factor``
            is set without worker processes.
    """
    num_workers = _num_workers(args)
    kwargs: dict[str, Any] = {
        "num_workers": num_workers,
        "pin_memory": _should_pin_memory(args),
        "drop_last": bool(getattr(args, "dataloader_drop_last", False)),
    }
    prefetch_factor = getattr(args, "dataloader_prefetch_factor", None)
    if num_workers == 0:
        if prefetch_factor is not None:
            raise ValueError(
                f"dataloader_prefetch_factor={prefetch_factor!r} needs worker processes, but "
                "dataloader_num_workers=0. Set dataloader_num_workers > 0 or leave "
                "dataloader_prefetch_factor unset."
            )
        return kwargs
    if rank is None:
        rank = int(getattr(args, "process_index", 0) or 0)
    kwargs["persistent_workers"] = bool(getattr(args, "dataloader_persistent_workers", False))
    kwargs["worker_init_fn"] = WorkerSeeder(num_workers, rank)
    if prefetch_factor is not None:
        kwargs["prefetch_factor"] = prefetch_factor
    context = getattr(args, "dataloader_multiprocessing_context", None)
    if context is not None:
        kwargs["multiprocessing_context"] = context
    # DataLoader(in_order=) exists from torch 2.6, the oldest this package supports.
    kwargs["in_order"] = bool(getattr(args, "dataloader_in_order", True))
    return kwargs


def _num_workers(args: Any) -> int:
    num_workers = getattr(args, "dataloader_num_workers", 0) or 0
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(
            f"dataloader_num_workers must be an integer >= 0, got {num_workers!r}. Use 0 to "
            "load data in the main process."
        )
    return num_workers


def _should_pin_memory(args: Any) -> bool:
    """Pin only where it helps: an accelerator that supports pinned host memory."""
    if not getattr(args, "dataloader_pin_memory", True):
        return False
    if getattr(args, "use_cpu", False) or getattr(args, "no_cuda", False):
        return False
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is None:
        return torch.cuda.is_available()
    if not accelerator.is_available():
        return False
    device = accelerator.current_accelerator()
    return device is not None and device.type != "mps"
