"""The callback that turns the logging, evaluation and save schedules into control switches.

The loop itself never decides *when* to log, evaluate or save: it asks
``DefaultFlowCallback`` through :class:`TrainerControl`, so a user can replace the
schedule with a callback of their own.

Strategies are compared as plain strings ("no", "steps", "epoch", "best"). The
arguments hold ``str`` enums defined in trainer-args, which compare equal to their
values; comparing strings keeps this package free of that import.
"""

from __future__ import annotations

from typing import Any

from trainer_core._callbacks import TrainerCallback
from trainer_core._state import TrainerControl, TrainerState

# Attribute names to try, in order: newer upstream spells the evaluation strategy
# ``eval_strategy``, the v4.34 API ``evaluation_strategy``.
_LOGGING = ("logging_strategy",)
_EVAL = ("eval_strategy", "evaluation_strategy")
_SAVE = ("save_strategy",)


# Plain-string form of each strategy value seen: the flow callback asks after every
# step, and reading an enum member's ``value`` costs more than the rest of the check.
_PLAIN_STRATEGY: dict[Any, str] = {}


def strategy_of(args: Any, names: tuple[str, ...]) -> str:
    """Return the first strategy set among ``names`` on ``args`` as a plain string.

    Enum members give their value; a missing or ``None`` strategy reads as ``"no"``.
    """
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            plain = _PLAIN_STRATEGY.get(value)
            if plain is None:
                plain = _PLAIN_STRATEGY[value] = str(getattr(value, "value", value))
            return plain
    return "no"


def eval_strategy_of(args: Any) -> str:
    """The evaluation strategy of ``args``, under either of its spellings."""
    return strategy_of(args, _EVAL)


def _every(step: int, interval: int | None) -> bool:
    """Whether ``step`` falls on a positive ``interval``; no interval means never."""
    return bool(interval) and interval > 0 and step % interval == 0


class DefaultFlowCallback(TrainerCallback):
    """Sets ``should_log``, ``should_evaluate``, ``should_save`` and ``should_training_stop``.

    After each optimizer step (``on_step_end``), with ``step = state.global_step``:

    - log when ``step == 1`` and ``args.logging_first_step``, and when the logging
      strategy is ``"steps"`` and ``step`` is a multiple of ``state.logging_steps``;
    - evaluate when the evaluation strategy is ``"steps"``, ``step`` is a multiple of
      ``state.eval_steps`` and ``step >= args.eval_delay``;
    - save when the save strategy is ``"steps"`` and ``step`` is a multiple of
      ``state.save_steps``;
    - at ``step >= state.max_steps``: stop training, and, as newer upstream releases
      do, also evaluate (``"steps"`` evaluation past the delay) and save (``"steps"``
      saving) if this last step was not on the schedule, so the final model is always
      evaluated and checkpointed.

    At the end of each epoch (``on_epoch_end``), each ``"epoch"`` strategy fires:
    logging, evaluation once ``state.epoch >= args.eval_delay``, and saving.

    ``save_strategy="best"`` sets nothing here: the loop saves when an evaluation
    improves the best metric. ``should_epoch_stop`` is never set here either; it is a
    switch for user callbacks.
    """

    def on_step_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        """Request the logging, evaluation and saving due after this step."""
        step = state.global_step
        if step == 1 and getattr(args, "logging_first_step", False):
            control.should_log = True
        if strategy_of(args, _LOGGING) == "steps" and _every(step, state.logging_steps):
            control.should_log = True
        eval_allowed = eval_strategy_of(args) == "steps" and step >= _eval_delay(args)
        if eval_allowed and _every(step, state.eval_steps):
            control.should_evaluate = True
        save_by_steps = strategy_of(args, _SAVE) == "steps"
        if save_by_steps and _every(step, state.save_steps):
            control.should_save = True
        if step >= state.max_steps:
            control.should_training_stop = True
            control.should_evaluate = control.should_evaluate or eval_allowed
            control.should_save = control.should_save or save_by_steps
        return control

    def on_epoch_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        """Request what the ``"epoch"`` strategies schedule at the end of an epoch."""
        if strategy_of(args, _LOGGING) == "epoch":
            control.should_log = True
        if eval_strategy_of(args) == "epoch" and state.epoch >= _eval_delay(args):
            control.should_evaluate = True
        if strategy_of(args, _SAVE) == "epoch":
            control.should_save = True
        return control


def _eval_delay(args: Any) -> float:
    """``args.eval_delay``: epochs or steps to wait before the first evaluation."""
    return getattr(args, "eval_delay", 0) or 0
