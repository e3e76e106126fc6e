"""Building the Trainer's DataLoaders from its datasets, collator and arguments.

The Trainer keeps the reference's overridable methods (``get_train_dataloader``,
``_get_train_sampler``, ``_remove_unused_columns``, ...); this module holds the one
recipe they share, so training, evaluation and test loaders differ only in what the
caller passes: batch size, sampler and whether it is for training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader, IterableDataset

from trainer_loop._columns import RemoveColumnsCollator, accepts_any_input, model_input_names
from trainer_loop._dataloader_options import dataloader_kwargs
from trainer_loop._subclass_hooks import signature_columns
from trainer_loop._trainer_setup import is_hf_dataset

if TYPE_CHECKING:
    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)


def build_dataloader(
    trainer: Trainer,
    dataset: Any,
    *,
    batch_size: int,
    sampler_for: Callable[[Any], Any],
    description: str,
    training: bool,
) -> Any:
    """A DataLoader over ``dataset`` as the Trainer's arguments describe, runtime-prepared.

    Args:
        trainer: supplies the arguments, the collator, the model (for column removal)
            and the runtime that shards the loader and moves its batches.
        dataset: a map-style or iterable dataset, or a ``datasets.Dataset``.
        batch_size: examples per batch on this process.
        sampler_for: called with the (column-filtered) dataset for a map-style dataset;
            iterable datasets get no sampler.
        description: "training", "evaluation" or "test", for log messages.
        training: selects the training-only loader options (``drop_last``, ...).
    """
    dataset = trainer._remove_unused_columns(dataset, description=description)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=None if isinstance(dataset, IterableDataset) else sampler_for(dataset),
        collate_fn=collator_for(trainer, dataset, description),
        **dataloader_kwargs(trainer.args, training=training),
    )
    return trainer.runtime.prepare_dataloader(loader)


def collator_for(trainer: Trainer, dataset: Any, description: str) -> Callable[[list[Any]], Any]:
    """The Trainer's collator, behind a column filter when examples are plain dicts.

    ``datasets.Dataset`` columns are dropped on the dataset itself; other datasets yield
    whatever keys they like, so the filter runs per batch. A forward that takes
    ``**kwargs`` accepts every key, so nothing is filtered for it.
    """
    collator = trainer.data_collator
    model = trainer.model
    if not trainer.args.remove_unused_columns or is_hf_dataset(dataset):
        return collator
    columns = signature_columns(trainer)  # a subclass's choice, else read from forward
    if columns is None and not accepts_any_input(model):
        columns = sorted(model_input_names(model, label_names=trainer.label_names))
    if columns is not None:
        collator = RemoveColumnsCollator(collator, columns, logger, description)
    return collator
