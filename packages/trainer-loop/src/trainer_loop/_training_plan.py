"""How many optimizer steps and epochs a ``train()`` call will run.

Computed once, before the loop starts, from the arguments and the train dataloader, with
the reference's rules: ``max_steps`` wins over ``num_train_epochs``; a fractional epoch
count trains that fraction of the last epoch; a dataloader without a length needs
``max_steps``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingPlan:
    """The numbers the loop, the scheduler and the speed metrics agree on."""

    max_steps: int
    num_train_epochs: int
    steps_per_epoch: int | None
    """Optimizer steps in one epoch; None when the dataloader has no length."""
    batches_per_epoch: int | None
    """Dataloader batches in one epoch; None when the dataloader has no length."""
    num_examples: int
    """Examples in one pass over the train dataset (as the reference reports it)."""
    num_train_samples: int
    """Examples the whole run will consume (for samples-per-second)."""
    total_train_batch_size: int


def resolve_interval(value: float, max_steps: int) -> int:
    """Turn a ``*_steps`` argument into a step count: a float below 1 is a fraction of the run."""
    if 0 < value < 1:
        return math.ceil(max_steps * value)
    return int(value)


def plan_training(
    args: Any,
    *,
    batches_per_epoch: int | None,
    num_examples: int | None,
    batch_size: int,
    step_batch_size: int | None = None,
) -> TrainingPlan:
    """Work out the run's length; raise if it cannot be known.

    Args:
        args: the TrainingArguments.
        batches_per_epoch: ``len(train_dataloader)`` or None if it has no length.
        num_examples: examples in the train dataset, or None if unknown.
        batch_size: the per-device batch size actually used (auto_find_batch_size may
            have lowered it).
        step_batch_size: samples one micro-step takes across all processes, when the
            prepared loader says (its ``total_batch_size``: the loader's batch size
            under ``split_batches``); None means ``batch_size * world_size``.
    """
    accumulation = args.gradient_accumulation_steps
    if step_batch_size is None:
        step_batch_size = batch_size * args.world_size
    total_batch = step_batch_size * accumulation
    if batches_per_epoch is None:
        if args.max_steps <= 0:
            raise ValueError(
                "The train dataset has no length (an IterableDataset?), so the number of "
                "training steps cannot be derived from num_train_epochs: set max_steps to "
                "a positive number of optimizer steps."
            )
        return TrainingPlan(
            max_steps=args.max_steps,
            num_train_epochs=sys.maxsize,
            steps_per_epoch=None,
            batches_per_epoch=None,
            num_examples=total_batch * args.max_steps,
            num_train_samples=total_batch * args.max_steps,
            total_train_batch_size=total_batch,
        )
    # The loop steps on the last, shorter window of an epoch too (windows never straddle
    # epochs), so an epoch holds ceil(batches / accumulation) optimizer steps.
    steps_per_epoch = max(math.ceil(batches_per_epoch / accumulation), 1)
    examples = num_examples if num_examples is not None else batches_per_epoch * batch_size
    if args.max_steps > 0:
        max_steps = args.max_steps
        epochs = max_steps // steps_per_epoch + int(max_steps % steps_per_epoch > 0)
        samples = max_steps * total_batch
    else:
        max_steps = math.ceil(args.num_train_epochs * steps_per_epoch)
        epochs = math.ceil(args.num_train_epochs)
        samples = int(examples * args.num_train_epochs)
    return TrainingPlan(
        max_steps=max_steps,
        num_train_epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batches_per_epoch=batches_per_epoch,
        num_examples=examples,
        num_train_samples=samples,
        total_train_batch_size=total_batch,
    )
