"""Checks and small decisions the Trainer makes at construction.

Kept out of the Trainer facade so that it stays a readable list of the reference's
methods; each function here answers one question about the constructor's arguments.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer_args import TrainingArguments

PACKAGE_LOGGERS = (
    "trainer",
    "trainer_core",
    "trainer_args",
    "trainer_checkpoint",
    "trainer_dist",
    "trainer_loop",
    "trainer_reporting",
    "trainer_hpsearch",
)


def apply_process_log_level(args: TrainingArguments) -> None:
    """Give our packages' loggers this process's level (main vs replica), as the
    reference does for its own logger; "passive" leaves them as the application set them."""
    setting = args.log_level if args.should_log else args.log_level_replica
    if setting == "passive":
        return
    level = args.get_process_log_level()
    for name in PACKAGE_LOGGERS:
        logging.getLogger(name).setLevel(level)


def pick_processing_class(tokenizer: Any, processing_class: Any) -> Any:
    if tokenizer is not None and processing_class is not None and tokenizer is not processing_class:
        raise ValueError(
            "Pass either `tokenizer` or `processing_class` (the same thing), not both."
        )
    return processing_class if processing_class is not None else tokenizer


def check_optimizers(optimizers: tuple[Any, Any], model_init: Any) -> tuple[Any, Any]:
    if not isinstance(optimizers, (tuple, list)) or len(optimizers) != 2:
        raise ValueError(
            "`optimizers` must be a tuple (optimizer, lr_scheduler); pass (None, None) to let "
            f"the Trainer create them. Got {optimizers!r}."
        )
    optimizer, scheduler = optimizers
    if model_init is not None and (optimizer is not None or scheduler is not None):
        raise RuntimeError(
            "Passing `optimizers` together with `model_init` is not supported: the model is "
            "re-created for each train() call, so the optimizer would hold stale parameters. "
            "Subclass Trainer and override create_optimizer_and_scheduler instead."
        )
    return optimizer, scheduler


def parameter_count(function: Callable[..., Any]) -> int:

    return len(inspect.signature(function).parameters)


def is_hf_dataset(dataset: Any) -> bool:
    return type(dataset).__module__.startswith("datasets.")
