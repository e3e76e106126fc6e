"""Checks and small decisions the Trainer makes at construction.

Kept out of the Trainer facade so that it stays a readable list of the reference's
methods; each function here answers one question about the constructor's arguments.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainer_loop._inputs import accepts_argument

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


class _StderrHandler(logging.StreamHandler):
    """Prints our packages' records to the current ``sys.stderr`` while the application
    has configured no logging of its own.

    The stream is looked up at each record (as Python's last-resort handler does), so a
    replaced ``sys.stderr`` is honoured. The handler stands aside when the root logger
    has handlers, or when the application gave the record's package logger one: the
    record then propagates to them, as it did before this handler existed, and is
    printed once.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:  # type: ignore[override]  # read-only: always sys.stderr
        return sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        package = logging.getLogger(record.name.partition(".")[0])
        if any(handler is not self for handler in package.handlers):
            return
        super().emit(record)


_STDERR_HANDLER = _StderrHandler()


def apply_process_log_level(args: TrainingArguments) -> None:
    """Give our packages' loggers this process's level (main vs replica), as the
    reference does for its own logger; "passive" leaves them as the application set them.

    With a level chosen, our loggers also get one shared stderr handler (see
    ``_StderrHandler``: silent once the application configures logging), so that
    ``log_level="info"`` prints the loop's info lines, and transformers, if imported,
    gets the same verbosity (``log_level_replica="error"`` quiets its warnings too).
    """
    setting = args.log_level if args.should_log else args.log_level_replica
    if setting == "passive":
        return
    level = args.get_process_log_level()
    for name in PACKAGE_LOGGERS:
        package_logger = logging.getLogger(name)
        package_logger.setLevel(level)
        if _STDERR_HANDLER not in package_logger.handlers:
            package_logger.addHandler(_STDERR_HANDLER)
    _set_transformers_verbosity(level)


def _set_transformers_verbosity(level: int) -> None:
    """Set transformers' own verbosity when the application already imported it (never
    import it here: a model that is not from transformers should not pay for it)."""
    if "transformers" not in sys.modules:
        return
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is None:
        hf_logging = importlib.import_module("transformers.utils.logging")
    hf_logging.set_verbosity(level)


def enable_activation_checkpointing(model: Any, kwargs: dict[str, Any] | None) -> None:
    """Turn on the model's activation (a.k.a. gradient) checkpointing for
    ``gradient_checkpointing=True``.

    transformers 5 renamed ``gradient_checkpointing_enable`` to
    ``activation_checkpointing_enable`` and warns (FutureWarning, on every process) when
    the old name is called, so the new name is preferred when the model has it; models
    that only define the old one (older transformers, custom modules) keep working.

    Args:
        model: the model as the user passed it (before any wrapping).
        kwargs: ``gradient_checkpointing_kwargs``, passed on when the method takes them.

    Raises:
        ValueError: the model has neither method.
    """
    keyword = "activation_checkpointing_kwargs"
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is None:
        keyword = "gradient_checkpointing_kwargs"
        enable = getattr(model, "gradient_checkpointing_enable", None)
    if enable is None:
        raise ValueError(
            f"gradient_checkpointing=True, but {type(model).__name__} has no "
            "`gradient_checkpointing_enable()` (or `activation_checkpointing_enable()`) "
            "method: implement one (e.g. with torch.utils.checkpoint) or turn "
            "gradient_checkpointing off."
        )
    if kwargs is not None and accepts_argument(enable, keyword):
        enable(**{keyword: kwargs})
    else:
        enable()


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
