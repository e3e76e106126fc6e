"""The reference's private methods and attributes that real ``Trainer`` subclasses use.

Public projects subclass the reference's Trainer and override, or call, methods it never
documented: LLaVA overrides ``_save_checkpoint`` and ``_save``; Alpaca and FastChat
save with ``trainer._save(output_dir, state_dict=...)``; TRL and others choose the kept
dataset columns through ``_set_signature_columns_if_needed`` / ``_signature_columns``;
PEFT scripts override ``save_model`` to write adapters into each checkpoint; TRL and
many others call ``self.accelerator``. Each such method exists here with the reference's
signature and is called at the equivalent point of our loop, so those subclasses run
unchanged. The module-level helpers are how the loop calls them, tolerating the
signatures of both v4.34 and transformers 5.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from trainer_loop._columns import model_input_names
from trainer_loop._log_save_evaluate import LogSaveEvaluateMethods
from trainer_loop._saving import restore_weights
from trainer_loop._trainer_setup import user_defines

if TYPE_CHECKING:
    from torch import nn

    from trainer_loop._trainer import Trainer

logger = logging.getLogger(__name__)

_SAVE_METHODS = ("save_model", "_save")


class SubclassHookMethods(LogSaveEvaluateMethods):
    """Mixed into ``Trainer``: the reference's private override points (see module doc)."""

    # Apex AMP is not supported (torch autocast is); subclasses branch on the flag.
    use_apex: bool = False
    _training_loop: Any = None  # the running TrainingLoop (set by it)
    _sync_gradients: bool = True  # False in micro-steps that keep gradients local

    @property
    def deepspeed(self: Trainer) -> Any:
        """The DeepSpeed engine while one trains the model, else None (the reference's
        attribute, which scripts test before saving: ``if trainer.deepspeed: ...``)."""
        if not self.is_deepspeed_enabled:
            return None
        return getattr(self.runtime, "engine", None)

    @property
    def accelerator(self: Trainer) -> Any:
        """The reference's ``self.accelerator``, which subclasses (TRL and others) call
        for ``unwrap_model``, ``gather_for_metrics``, ``is_main_process``, ``reduce``,
        ...: a :class:`trainer_dist.AcceleratorFacade` over this Trainer's runtime, made
        once per runtime (assigning ``trainer.accelerator`` replaces it)."""
        facade = self.__dict__.get("_accelerator")
        if facade is None or getattr(facade, "runtime", self.runtime) is not self.runtime:
            from trainer_dist import AcceleratorFacade

            facade = self.__dict__["_accelerator"] = AcceleratorFacade(self.runtime)
            facade.sync_gradients = self._sync_gradients
        return facade

    @accelerator.setter
    def accelerator(self: Trainer, value: Any) -> None:
        self.__dict__["_accelerator"] = value

    @property
    def gather_function(self: Trainer) -> Any:
        """The reference's ``self.gather_function``, which custom evaluation loops call
        on each batch's outputs: ``accelerator.gather_for_metrics`` with
        ``use_gather_object=args.eval_use_gather_object``. Assigning it replaces it for
        such loops; the built-in evaluation loop gathers through the runtime itself."""
        chosen = self.__dict__.get("_gather_function")
        if chosen is not None:
            return chosen
        return functools.partial(
            self.accelerator.gather_for_metrics,
            use_gather_object=bool(getattr(self.args, "eval_use_gather_object", False)),
        )

    @gather_function.setter
    def gather_function(self: Trainer, value: Any) -> None:
        self.__dict__["_gather_function"] = value

    def end(self: Trainer) -> None:
        """transformers 5's last call of a script: leaves the process group (through
        ``self.accelerator.end_training()``, which a subclass's facade may extend).
        Nothing that talks to the other processes works afterwards."""
        self.accelerator.end_training()

    def _move_model_to_device(self: Trainer, model: nn.Module, device: Any) -> None:
        """Place ``model`` on ``device`` (in place); called wherever the Trainer places it."""
        model.to(device)

    def _set_signature_columns_if_needed(self: Trainer) -> None:
        """Fill ``_signature_columns``: the dataset columns ``remove_unused_columns`` keeps.

        An override (or a value assigned to ``_signature_columns``) replaces the names
        read from the model's ``forward`` (see :func:`signature_columns`).
        """
        if self._signature_columns is None:
            names = model_input_names(self.model, label_names=self.label_names)
            self._signature_columns = sorted(names)

    def _save(self: Trainer, output_dir: str | None = None, state_dict: Any = None) -> None:
        """Write the model, processing class and arguments into ``output_dir`` (the
        caller is a writing process; ``save_model`` runs the collectives first).

        ``state_dict`` replaces the model's own weights when given, as scripts that
        gather it themselves pass it (``trainer._save(output_dir, state_dict=...)``).
        """
        self._checkpoints.write_model(output_dir or self.args.output_dir, state_dict)

    def _save_checkpoint(
        self: Trainer, model: nn.Module, trial: Any, metrics: dict[str, float] | None = None
    ) -> None:
        """Write ``checkpoint-<global_step>``; ``metrics`` (v4.34's argument) are checked
        for a new best first, as v4.34 did: an override of ``_maybe_log_save_evaluate``
        copied from it evaluates itself and passes them here (our loop has already
        recorded them, and recording the same metrics twice changes nothing).

        A subclass overriding ``save_model`` or ``_save`` gets it called on the finished
        checkpoint folder, as the reference writes a checkpoint's model through them
        (PEFT scripts write their adapters there).
        """
        if metrics is not None:
            self._checkpoints.record_metrics(metrics)
        path = self._checkpoints.save_checkpoint(self._get_output_dir(trial))
        if user_defines(self, _SAVE_METHODS):
            self.save_model(path, _internal_call=True)

    def _load_from_checkpoint(
        self: Trainer, resume_from_checkpoint: str, model: nn.Module | None = None
    ) -> None:
        """Load the model weights of a checkpoint (every process calls it). ``model`` is
        the reference's argument; the weights always go into ``model_wrapped`` through
        the runtime."""
        restore_weights(self, resume_from_checkpoint)

    def get_batch_samples(
        self: Trainer, epoch_iterator: Iterator[Any], num_batches: int, device: Any = None
    ) -> tuple[list[Any], Any]:
        """transformers 5's hook: the next ``num_batches`` micro-batches of the running
        training loop and their loss-item count (summed over the processes), or None
        when the loss is not normalised by it. Called by the loop only when overridden.
        """
        loop = self._training_loop
        if loop is None:
            raise RuntimeError("get_batch_samples draws from a running train() loop only.")
        window = list(islice(epoch_iterator, num_batches))
        return window, (loop._items_in_window(window) if window else None)

    def _load_best_model(self: Trainer) -> None:
        """Load ``state.best_model_checkpoint``'s weights at the end of training."""
        self._checkpoints.load_best_model()


def defines_batch_samples(trainer: Trainer) -> bool:
    """Whether a subclass overrides ``get_batch_samples`` (asked once per run)."""
    return user_defines(trainer, ("get_batch_samples",))


def defines_log_save_evaluate(trainer: Trainer) -> bool:
    """Whether a subclass overrides ``_maybe_log_save_evaluate`` (asked once per run)."""
    return user_defines(trainer, ("_maybe_log_save_evaluate",))


def signature_columns(trainer: Trainer) -> list[str] | None:
    """The columns a subclass chose to keep, or None to read them from ``forward``.

    Chosen means ``_set_signature_columns_if_needed`` is overridden, or
    ``_signature_columns`` was assigned; our own names need no list, since
    ``remove_unused_columns`` also knows a ``forward(**kwargs)`` keeps everything.
    """
    if user_defines(trainer, ("_set_signature_columns_if_needed",)):
        trainer._set_signature_columns_if_needed()
    columns = trainer._signature_columns
    return None if columns is None else list(columns)


def call_train_sampler(trainer: Trainer, dataset: Any) -> Any:
    """Call ``_get_train_sampler`` as it is declared: transformers 5 passes the
    (column-filtered) dataset, v4.34 passed nothing. Our own reads ``train_dataset``,
    whose columns (a length column for ``group_by_length``) are all still there."""
    if not user_defines(trainer, ("_get_train_sampler",)):
        return trainer._get_train_sampler()
    try:
        takes_dataset = bool(inspect.signature(trainer._get_train_sampler).parameters)
    except (TypeError, ValueError):
        takes_dataset = False
    return trainer._get_train_sampler(dataset) if takes_dataset else trainer._get_train_sampler()
