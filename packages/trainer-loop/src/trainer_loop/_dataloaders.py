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
from trainer_loop._dataloader_options import dataloader_kwargs, has_length, is_hf_dataset
from trainer_loop._subclass_hooks import signature_columns

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

    Raises:
        ValueError: for training, the dataset is empty or the loader has no batch (a
            loader without one for evaluation only logs a warning).
    """
    dataset = trainer._remove_unused_columns(dataset, description=description)
    if training and has_length(dataset) and len(dataset) == 0:
        raise ValueError(
            "train_dataset is empty (0 examples): there is nothing to train on. Check the "
            "filtering or splitting that built it."
        )
    stream = isinstance(dataset, IterableDataset)
    options = dataloader_kwargs(trainer.args, training=training)
    if stream:  # as in the reference: a stream's last, shorter batch is kept
        options["drop_last"] = False
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=None if stream else sampler_for(dataset),
        collate_fn=collator_for(trainer, dataset, description),
        **options,
    )
    prepared = trainer.runtime.prepare_dataloader(loader)
    if has_length(prepared) and len(prepared) == 0:
        _report_no_batches(trainer, dataset, batch_size, description, training)
    return prepared


def _report_no_batches(
    trainer: Trainer, dataset: Any, batch_size: int, description: str, training: bool
) -> None:
    """Refuse a training loader with no batch (the run would train nothing and report
    success); warn for evaluation, whose metrics would hold no loss.

    An empty loader over a non-empty dataset comes from ``dataloader_drop_last``
    dropping the only, incomplete batch.
    """
    examples = len(dataset) if has_length(dataset) else "?"
    processes = trainer.runtime.num_processes
    cause = (
        f"{examples} examples, fewer than one batch of {batch_size} per process "
        f"x {processes} process(es), and dataloader_drop_last=True drops the incomplete one"
        if trainer.args.dataloader_drop_last
        else f"{examples} examples"
    )
    if training:
        raise ValueError(
            f"The {description} DataLoader has no batch ({cause}), so training would run "
            "no step. Lower the batch size, add examples, or set dataloader_drop_last=False."
        )
    logger.warning(
        "The %s DataLoader has no batch (%s): nothing will be evaluated and the metrics "
        "will hold no loss.",
        description,
        cause,
    )


def collator_for(trainer: Trainer, dataset: Any, description: str) -> Callable[[list[Any]], Any]:
    """The Trainer's collator, behind a column filter when examples are plain dicts.

    ``datasets.Dataset`` columns are dropped on the dataset itself; other datasets yield
    whatever keys they like, so the filter runs per batch. The filter comes from the
    Trainer's ``_get_collator_with_removed_columns``, so that a subclass overriding that
    hook changes every loader, as in the reference.
    """
    if is_hf_dataset(dataset):
        return trainer.data_collator
    return trainer._get_collator_with_removed_columns(trainer.data_collator, description)


def remove_columns_collator(
    trainer: Trainer, collator: Callable[[list[Any]], Any], description: str | None = None
) -> Callable[[list[Any]], Any]:
    """``collator`` behind a filter that drops the keys ``forward`` does not take.

    Returned unchanged when ``remove_unused_columns`` is off, or when a forward that
    takes only ``**kwargs`` accepts every key (and no subclass chose the columns).
    Subclasses copied from the reference call this, through the Trainer's
    ``_get_collator_with_removed_columns``, in their own ``get_*_dataloader``.
    """
    if not trainer.args.remove_unused_columns:
        return collator
    model = trainer.model
    columns = signature_columns(trainer)  # a subclass's choice, else read from forward
    if columns is None and not accepts_any_input(model):
        columns = sorted(model_input_names(model, label_names=trainer.label_names))
    if columns is None:
        return collator
    name = type(model).__name__
    return RemoveColumnsCollator(collator, columns, logger, name, description)
