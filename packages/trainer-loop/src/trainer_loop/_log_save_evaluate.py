"""The reference's ``_maybe_log_save_evaluate`` and the internals its overrides use.

Research code subclasses the reference Trainer and overrides ``_maybe_log_save_evaluate``
to log values of its own (auxiliary losses, router statistics) or to change when it
evaluates. Such overrides start from a copy of the reference body, in one of three
signatures: v4.34's ``(tr_loss, model, trial, epoch, ignore_keys_for_eval)``, v4.4x's
with ``grad_norm`` after ``tr_loss``, and transformers 5's with ``start_time`` and
``learning_rate`` added. The body reads the loss summed since the last log from the
``tr_loss`` tensor and resets it in place (``tr_loss -= tr_loss``), and moves
``_total_loss_scalar`` and ``_globalstep_last_logged`` forward.

Our loop keeps its losses in a :class:`~trainer_loop._loss_tracker.LossTracker` and
logs without this method. When a subclass overrides it, :class:`OverrideCaller` calls
it where the reference does (after every optimizer step and at each epoch's end), with
the tracker's running ``tr_loss`` tensor: what the override subtracts from it, the
tracker no longer counts, and ``_total_loss_scalar`` is the tracker's total, so the
final ``train_loss`` is the reference's (logged sums plus what is left). Without an
override the loop never builds that tensor (no per-step work).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from trainer_loop._inputs import accepts_argument
from trainer_loop._nested import map_nested

if TYPE_CHECKING:
    from torch import nn

    from trainer_loop._trainer import Trainer
    from trainer_loop._training_loop import TrainingLoop

_ARGUMENT_NAMES = (
    "tr_loss",
    "grad_norm",
    "model",
    "trial",
    "epoch",
    "ignore_keys_for_eval",
    "start_time",
    "learning_rate",
)


class LogSaveEvaluateMethods:
    """Mixed into ``Trainer``: the default method and the internals overrides touch."""

    @property
    def _total_loss_scalar(self: Trainer) -> float:
        """Sum of the losses logged so far in this run (the reference's attribute);
        the running loop's tracker total, which the final ``train_loss`` divides."""
        loop = self._training_loop
        return loop.tracker.total if loop is not None else self.__dict__.get("_total_loss", 0.0)

    @_total_loss_scalar.setter
    def _total_loss_scalar(self: Trainer, value: float) -> None:
        loop = self._training_loop
        if loop is not None:
            loop.tracker.total = float(value)
        else:
            self.__dict__["_total_loss"] = float(value)

    @property
    def _globalstep_last_logged(self: Trainer) -> int:
        """The global step of the last training-loss log (the reference's attribute)."""
        loop = self._training_loop
        return loop.last_logged_step if loop is not None else self.state.global_step

    @_globalstep_last_logged.setter
    def _globalstep_last_logged(self: Trainer, value: int) -> None:
        loop = self._training_loop
        if loop is not None:
            loop.last_logged_step = int(value)

    def _nested_gather(self: Trainer, tensors: Any, name: str | None = None) -> Any:
        """Concatenate ``tensors`` (nested) from every process; 0-d tensors become one
        row each, so ``_nested_gather(tr_loss).mean()`` averages the processes' sums."""
        if tensors is None or self.runtime.num_processes == 1:
            return tensors
        gather = self.runtime.gather
        return map_nested(lambda t: gather(t.reshape(1) if t.ndim == 0 else t), tensors)

    def _evaluate(
        self: Trainer,
        trial: Any,
        ignore_keys_for_eval: list[str] | None,
        skip_scheduler: bool = False,
    ) -> dict[str, float]:
        """Evaluate during training and report to a search; a ``ReduceLROnPlateau``
        scheduler steps on the metrics unless ``skip_scheduler``."""
        if not skip_scheduler:
            return self._evaluate_during_training(trial, ignore_keys_for_eval)
        metrics = self.evaluate(ignore_keys=ignore_keys_for_eval)
        self._report_to_hp_search(trial, self.state.global_step, metrics)
        return metrics

    def _determine_best_metric(self: Trainer, metrics: dict[str, float], trial: Any) -> bool:
        """Track ``metric_for_best_model``; whether ``metrics`` holds a new best."""
        return self._checkpoints.record_metrics(metrics)

    def _maybe_log_save_evaluate(
        self: Trainer,
        tr_loss: torch.Tensor,
        grad_norm: torch.Tensor | float | None,
        model: nn.Module,
        trial: Any,
        epoch: float,
        ignore_keys_for_eval: list[str] | None,
        start_time: float | None = None,
        learning_rate: float | None = None,
    ) -> None:
        """Log the training loss, evaluate and save as the control flags ask.

        The loop calls this only when a subclass overrides it (see the module doc);
        an override may call it through ``super()`` in any of the three signatures.
        """
        if self.control.should_log and self.state.global_step > self._globalstep_last_logged:
            log_running_loss(self, tr_loss, grad_norm, learning_rate, start_time)
        evaluate_and_save(self, model, trial, ignore_keys_for_eval)


def log_running_loss(
    trainer: Trainer, tr_loss: Any, grad_norm: Any, learning_rate: float | None, start_time: Any
) -> None:
    """Log the mean loss per step since the last log, read from ``tr_loss`` (reset in
    place), with the gradient norm and learning rate; as our loop's own log does.

    An override in an older signature passes no ``grad_norm`` / ``learning_rate``
    through ``super()``: the running loop's are logged then, as without the override.
    """
    state = trainer.state
    loop = trainer._training_loop
    if loop is not None:
        grad_norm = loop.grad_norm if grad_norm is None else grad_norm
        learning_rate = loop.step_learning_rate if learning_rate is None else learning_rate
    summed = float(trainer._nested_gather(tr_loss).mean().item())
    tr_loss -= tr_loss
    logs: dict[str, float] = {
        "loss": summed / (state.global_step - trainer._globalstep_last_logged)
    }
    if grad_norm is not None:
        logs["grad_norm"] = float(grad_norm.item() if torch.is_tensor(grad_norm) else grad_norm)
    logs["learning_rate"] = trainer._get_learning_rate() if learning_rate is None else learning_rate
    trainer._total_loss_scalar += summed
    trainer._globalstep_last_logged = state.global_step
    if loop is not None:
        loop._sync_tokens_seen()
    trainer.store_flos()
    if start_time is not None and accepts_argument(trainer.log, "start_time"):
        trainer.log(logs, start_time)
    else:
        trainer.log(logs)


def evaluate_and_save(
    trainer: Trainer, model: Any, trial: Any, ignore_keys: list[str] | None
) -> None:
    """Evaluate and save as ``trainer.control`` asks; with ``save_strategy="best"`` a
    checkpoint is written when the evaluation found a new best metric.

    An evaluation without ``metric_for_best_model`` (a misspelt name) stops training,
    but only once the checkpoint due at this step is written: the steps trained so far
    are not lost to the typo.
    """
    control = trainer.control
    metrics = None
    if control.should_evaluate:
        metrics = trainer._evaluate(trial, ignore_keys)
        model.train()
        try:
            is_best = trainer._determine_best_metric(metrics, trial)
        except KeyError:
            if control.should_save:  # without the metrics, which hold no best to track
                call_save_checkpoint(trainer, model, trial, None)
            raise
        if is_best and trainer._checkpoints.save_strategy_is_best():
            control.should_save = True
    if control.should_save:
        call_save_checkpoint(trainer, model, trial, metrics)
        trainer.control = trainer.callback_handler.on_save(
            trainer.args, trainer.state, trainer.control
        )


def call_save_checkpoint(trainer: Trainer, model: Any, trial: Any, metrics: Any) -> None:
    """Call ``_save_checkpoint`` in the signature it has: v4.34's ``(model, trial,
    metrics=None)`` or transformers 5's ``(model, trial)``."""
    if accepts_argument(trainer._save_checkpoint, "metrics"):
        trainer._save_checkpoint(model, trial, metrics=metrics)
    else:
        trainer._save_checkpoint(model, trial)


class OverrideCaller:
    """Calls a subclass's ``_maybe_log_save_evaluate`` with the arguments it names.

    Which names it takes is read once per run: positional copies of the three
    reference signatures (and ones that add parameters with defaults) all bind by name;
    one with ``**kwargs`` gets every argument of transformers 5's signature.
    """

    def __init__(self, trainer: Trainer, loop: TrainingLoop) -> None:
        self.trainer = trainer
        self.loop = loop
        self.names = _wanted_arguments(trainer._maybe_log_save_evaluate)

    def __call__(self, epoch: int) -> None:
        loop = self.loop
        device = self.trainer.runtime.device
        values = {
            "tr_loss": loop.tracker.running_sum(device),
            "grad_norm": loop.grad_norm,
            "model": loop.model,
            "trial": loop.trial,
            "epoch": epoch,
            "ignore_keys_for_eval": loop.ignore_keys_for_eval,
            "start_time": loop.start_time,
            "learning_rate": loop.step_learning_rate,
        }
        self.trainer._maybe_log_save_evaluate(**{name: values[name] for name in self.names})
        if not loop.model.training:  # the override evaluated without switching back
            loop.model.train()


def _wanted_arguments(method: Any) -> tuple[str, ...]:
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return _ARGUMENT_NAMES
    named = {p.name for p in parameters}
    return tuple(name for name in _ARGUMENT_NAMES if name in named)
