"""DefaultFlowCallback, driven through a simulated training loop.

The loop below follows the order documented on ``Event``: step end, then log /
evaluate / save as the control says, then epoch end and the same again. It records the
global step at which each action fired.
"""

from __future__ import annotations

from enum import Enum
from types import SimpleNamespace
from typing import Any

import pytest

from trainer_core import CallbackHandler, DefaultFlowCallback, TrainerControl, TrainerState


class IntervalStrategy(str, Enum):
    """Stands in for the str enums trainer-args defines."""

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"


def make_args(**overrides: Any) -> SimpleNamespace:
    values = {
        "logging_strategy": "no",
        "eval_strategy": "no",
        "save_strategy": "no",
        "logging_first_step": False,
        "logging_steps": 500,
        "eval_steps": 500,
        "save_steps": 500,
        "eval_delay": 0,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def simulate(
    args: SimpleNamespace, *, epochs: int, steps_per_epoch: int, max_steps: int | None = None
) -> dict[str, list[int]]:
    state = TrainerState(
        max_steps=max_steps if max_steps is not None else epochs * steps_per_epoch,
        num_train_epochs=epochs,
    )
    state.compute_steps(args, state.max_steps)
    handler = CallbackHandler([DefaultFlowCallback()], None, None, None, None)
    control = handler.on_train_begin(args, state, TrainerControl())
    fired: dict[str, list[int]] = {"log": [], "evaluate": [], "save": [], "stop": []}
    for epoch in range(epochs):
        control = handler.on_epoch_begin(args, state, control)
        for index in range(steps_per_epoch):
            control = handler.on_step_begin(args, state, control)
            state.global_step += 1
            state.epoch = epoch + (index + 1) / steps_per_epoch
            control = handler.on_step_end(args, state, control)
            control = _act(handler, args, state, control, fired)
            if control.should_epoch_stop or control.should_training_stop:
                break
        control = handler.on_epoch_end(args, state, control)
        control = _act(handler, args, state, control, fired)
        if control.should_training_stop:
            fired["stop"].append(state.global_step)
            break
    handler.on_train_end(args, state, control)
    return fired


def _act(
    handler: CallbackHandler,
    args: Any,
    state: TrainerState,
    control: TrainerControl,
    fired: dict[str, list[int]],
) -> TrainerControl:
    if control.should_log:
        fired["log"].append(state.global_step)
        control = handler.on_log(args, state, control, {})
    if control.should_evaluate:
        fired["evaluate"].append(state.global_step)
        control = handler.on_evaluate(args, state, control, {})
    if control.should_save:
        fired["save"].append(state.global_step)
        control = handler.on_save(args, state, control)
    return control


def test_steps_strategies_fire_on_their_intervals() -> None:
    args = make_args(
        logging_strategy="steps",
        eval_strategy="steps",
        save_strategy="steps",
        logging_first_step=True,
        logging_steps=2,
        eval_steps=3,
        save_steps=4,
    )
    fired = simulate(args, epochs=3, steps_per_epoch=4)
    assert fired["log"] == [1, 2, 4, 6, 8, 10, 12]
    assert fired["evaluate"] == [3, 6, 9, 12]
    assert fired["save"] == [4, 8, 12]
    assert fired["stop"] == [12]


def test_last_step_is_evaluated_and_saved_even_off_schedule() -> None:
    args = make_args(
        logging_strategy="steps",
        eval_strategy="steps",
        save_strategy="steps",
        logging_steps=4,
        eval_steps=4,
        save_steps=4,
    )
    fired = simulate(args, epochs=3, steps_per_epoch=4, max_steps=10)
    assert fired["log"] == [4, 8]  # logging is not forced at the end
    assert fired["evaluate"] == [4, 8, 10]
    assert fired["save"] == [4, 8, 10]
    assert fired["stop"] == [10]


def test_epoch_strategies_fire_at_epoch_ends() -> None:
    args = make_args(logging_strategy="epoch", eval_strategy="epoch", save_strategy="epoch")
    fired = simulate(args, epochs=3, steps_per_epoch=4)
    assert fired == {"log": [4, 8, 12], "evaluate": [4, 8, 12], "save": [4, 8, 12], "stop": [12]}


def test_epoch_strategies_still_fire_when_max_steps_cuts_an_epoch() -> None:
    args = make_args(logging_strategy="epoch", eval_strategy="epoch", save_strategy="epoch")
    fired = simulate(args, epochs=3, steps_per_epoch=4, max_steps=6)
    assert fired == {"log": [4, 6], "evaluate": [4, 6], "save": [4, 6], "stop": [6]}


def test_eval_delay_counts_epochs_for_the_epoch_strategy() -> None:
    args = make_args(eval_strategy="epoch", eval_delay=2)
    assert simulate(args, epochs=3, steps_per_epoch=4)["evaluate"] == [8, 12]


def test_eval_delay_counts_steps_for_the_steps_strategy() -> None:
    args = make_args(eval_strategy="steps", eval_steps=2, eval_delay=5)
    assert simulate(args, epochs=3, steps_per_epoch=4)["evaluate"] == [6, 8, 10, 12]


def test_eval_delay_past_the_end_means_no_evaluation() -> None:
    args = make_args(eval_strategy="steps", eval_steps=2, eval_delay=100)
    assert simulate(args, epochs=1, steps_per_epoch=4)["evaluate"] == []


def test_no_strategies_only_stop_at_max_steps() -> None:
    fired = simulate(make_args(logging_first_step=True), epochs=2, steps_per_epoch=3)
    assert fired == {"log": [1], "evaluate": [], "save": [], "stop": [6]}


def test_best_save_strategy_is_left_to_the_loop() -> None:
    args = make_args(save_strategy="best", eval_strategy="steps", eval_steps=2)
    fired = simulate(args, epochs=1, steps_per_epoch=4)
    assert fired["save"] == [] and fired["evaluate"] == [2, 4]


def test_ratio_steps_are_resolved_against_max_steps() -> None:
    args = make_args(logging_strategy="steps", logging_steps=0.25)
    assert simulate(args, epochs=2, steps_per_epoch=4)["log"] == [2, 4, 6, 8]


def test_zero_save_steps_never_saves_on_a_schedule() -> None:
    args = make_args(save_strategy="steps", save_steps=0)
    assert simulate(args, epochs=1, steps_per_epoch=4)["save"] == [4]  # only the final save


@pytest.mark.parametrize("spelling", ["eval_strategy", "evaluation_strategy"])
def test_str_enum_strategies_and_both_spellings_behave_like_strings(spelling: str) -> None:
    args = make_args(
        logging_strategy=IntervalStrategy.STEPS,
        save_strategy=IntervalStrategy.EPOCH,
        logging_steps=3,
        eval_steps=2,
    )
    del args.eval_strategy
    setattr(args, spelling, IntervalStrategy.STEPS)
    fired = simulate(args, epochs=2, steps_per_epoch=3)
    assert fired["log"] == [3, 6]
    assert fired["evaluate"] == [2, 4, 6]
    assert fired["save"] == [3, 6]


def test_plain_enum_members_are_read_by_value() -> None:
    class Plain(Enum):
        STEPS = "steps"

    args = make_args(save_strategy=Plain.STEPS, save_steps=2)
    assert simulate(args, epochs=1, steps_per_epoch=4)["save"] == [2, 4]
