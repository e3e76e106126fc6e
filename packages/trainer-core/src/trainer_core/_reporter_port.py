"""The reporter port: a callback that sends the loop's logs to a tracking service.

Reporters are chosen by name (``report_to="tensorboard"``), so each one carries the name
it is registered under in the ``trainer.report_to`` entry-point group. Beyond the name, a
reporter is an ordinary :class:`~trainer_core.TrainerCallback`: the loop adds it to the
callback list and never calls it any other way, which is why this contract is this small.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from trainer_core._state import TrainerControl, TrainerState


@runtime_checkable
class Reporter(Protocol):
    """A :class:`~trainer_core.TrainerCallback` that reports metrics under a ``name``.

    Contract, for every implementation:

    * ``name`` is the string users pass in ``report_to`` and the entry-point name the
      implementation is registered under; it is a class attribute, so it can be read
      without constructing the reporter (construction may import a heavy library).
    * The entry point names the class; the loop instantiates it with no arguments, once
      per trainer (the loader refuses a function, an instance, or a class whose ``name``
      differs from the entry-point name).
    * Every event also receives keyword arguments beyond those named (``model``,
      ``optimizer``, ``train_dataloader``, ...), so each method takes ``**kwargs``.
    * Construction raises :class:`~trainer_core.MissingExtraError` when the library it
      needs is absent, so a misspelt install fails when the trainer is built, not at the
      first log.
    * Only the main process (``state.is_world_process_zero``) writes anything; the other
      processes receive the same events and return without effect.
    * :meth:`on_log` receives ``logs`` as the loop logs them (``loss``, ``eval_loss``,
      ``learning_rate``, ...) at ``state.global_step``; a value the service cannot store
      is skipped with a warning, never raised.
    * :meth:`on_train_end` makes everything written so far durable (flushes or ends the
      run), so that a reader sees the complete training once ``train()`` returns.
    """

    name: str

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Open the run (or reuse the one already open) and record the configuration."""

    def on_log(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Send ``kwargs["logs"]`` at step ``state.global_step``."""

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Flush what was reported (and end the run where the service expects it)."""
