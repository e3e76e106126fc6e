"""``report_to="tensorboard"``: event files under ``args.logging_dir``."""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any, ClassVar

from trainer_core import TrainerCallback, TrainerControl, TrainerState, import_optional
from trainer_reporting._logs import (
    model_config_json,
    rewrite_logs,
    run_settings_json,
    scalar_value,
)

logger = logging.getLogger(__name__)


def summary_writer_class() -> type:
    """The ``SummaryWriter`` to build: PyTorch's when torch and tensorboard are importable
    (the reference's first choice), else tensorboardX's, which needs no torch.

    Raises:
        MissingExtraError: neither is installed.
    """
    if importlib.util.find_spec("torch") is not None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch without the tensorboard package: try tensorboardX
            pass
        else:
            return SummaryWriter
    module = import_optional(
        "tensorboardX",
        package="trainer-reporting",
        extra="tensorboard",
        feature="TensorBoardCallback",
    )
    return module.SummaryWriter


def events_dir(args: Any) -> str | None:
    """The folder the events go to: ``TENSORBOARD_LOGGING_DIR`` when set, else
    ``args.logging_dir`` (None: the writer's own default, ``runs/<date>_<host>``).

    Later upstream releases dropped the ``logging_dir`` argument and read this variable
    instead, so a script written for them still finds its events where it looks.
    """
    folder = os.getenv("TENSORBOARD_LOGGING_DIR") or getattr(args, "logging_dir", None)
    return os.path.expanduser(folder) if folder else None


class TensorBoardCallback(TrainerCallback):
    """Writes the run's logs as TensorBoard scalars.

    At train begin the arguments (as JSON text), the model's configuration (when the
    model has a ``config``) and the hyperparameters are recorded; each log then becomes
    scalars named ``train/...``, ``eval/...`` or ``test/...`` at ``state.global_step``.
    String values are written as text; values of other types are skipped with a warning.
    Only the main process writes.

    The events go to ``args.logging_dir``, or to ``TENSORBOARD_LOGGING_DIR`` when that is
    set; a hyperparameter-search trial writes to ``<that folder>/<trial name>`` so that
    trials appear as separate runs.

    Args:
        tb_writer: A ready ``SummaryWriter`` to write with; by default one is built
            (PyTorch's when torch is installed, else tensorboardX's).

    Raises:
        MissingExtraError: neither tensorboardX nor torch with tensorboard is installed.
    """

    name: ClassVar[str] = "tensorboard"

    def __init__(self, tb_writer: Any = None) -> None:
        self._SummaryWriter = summary_writer_class() if tb_writer is None else None
        self.tb_writer = tb_writer

    def _init_summary_writer(self, args: Any, log_dir: str | None = None) -> None:
        if self._SummaryWriter is None:  # a writer was given, then closed at train end
            self._SummaryWriter = summary_writer_class()
        self.tb_writer = self._SummaryWriter(log_dir or events_dir(args))

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        log_dir = None
        if state.is_hyper_param_search and state.trial_name is not None:
            log_dir = os.path.join(events_dir(args) or "", state.trial_name)
        if self.tb_writer is None:
            self._init_summary_writer(args, log_dir)
        self.tb_writer.add_text("args", run_settings_json(args))
        config_json = model_config_json(kwargs.get("model"))
        if config_json is not None:
            self.tb_writer.add_text("model_config", config_json)
        if hasattr(self.tb_writer, "add_hparams"):
            self.tb_writer.add_hparams(args.to_sanitized_dict(), metric_dict={})

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        if self.tb_writer is None:
            self._init_summary_writer(args)
        for key, value in rewrite_logs(logs or {}).items():
            self._write(key, value, state.global_step)
        self.tb_writer.flush()

    def _write(self, key: str, value: Any, step: int) -> None:
        number = scalar_value(value)
        if number is not None:
            self.tb_writer.add_scalar(key, number, step)
        elif isinstance(value, str):
            self.tb_writer.add_text(key, value, step)
        else:
            logger.warning(
                "TensorBoard: the logged value %r (type %s) for key %r is not a number or "
                "a string, so it was not written. Log a number (or a one-element tensor).",
                value,
                type(value).__name__,
                key,
            )

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.tb_writer is not None:
            self.tb_writer.close()
            self.tb_writer = None
