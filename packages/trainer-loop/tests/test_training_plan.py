"""Run-length arithmetic: max_steps vs epochs, fractions, no-length dataloaders."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from trainer_loop._training_plan import plan_training, resolve_interval


def _args(**overrides):
    values = dict(gradient_accumulation_steps=1, world_size=1, max_steps=-1, num_train_epochs=3.0)
    values.update(overrides)
    return SimpleNamespace(**values)


def test_epochs_give_steps_per_epoch_times_epochs() -> None:
    plan = plan_training(_args(), batches_per_epoch=10, num_examples=80, batch_size=8)
    assert (plan.max_steps, plan.num_train_epochs, plan.steps_per_epoch) == (30, 3, 10)
    assert plan.num_train_samples == 240
    assert plan.total_train_batch_size == 8


def test_fractional_epochs_round_steps_up() -> None:
    plan = plan_training(
        _args(num_train_epochs=1.5), batches_per_epoch=7, num_examples=56, batch_size=8
    )
    assert plan.max_steps == 11  # ceil(1.5 * 7)
    assert plan.num_train_epochs == 2


def test_max_steps_wins_over_epochs() -> None:
    plan = plan_training(_args(max_steps=25), batches_per_epoch=10, num_examples=80, batch_size=8)
    assert (plan.max_steps, plan.num_train_epochs) == (25, 3)
    assert plan.num_train_samples == 25 * 8


def test_accumulation_and_processes_scale_the_global_batch() -> None:
    plan = plan_training(
        _args(gradient_accumulation_steps=4, world_size=2),
        batches_per_epoch=10,
        num_examples=80,
        batch_size=8,
    )
    assert plan.steps_per_epoch == 3  # ceil(10 / 4): the short last window is stepped
    assert plan.total_train_batch_size == 64


def test_no_length_requires_max_steps() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        plan_training(_args(), batches_per_epoch=None, num_examples=None, batch_size=8)
    plan = plan_training(
        _args(max_steps=5), batches_per_epoch=None, num_examples=None, batch_size=8
    )
    assert (plan.max_steps, plan.num_train_epochs) == (5, sys.maxsize)


@pytest.mark.parametrize(
    ("value", "total", "expected"), [(500, 100, 500), (0.1, 95, 10), (0.5, 3, 2), (1, 10, 1)]
)
def test_intervals_below_one_are_fractions_of_the_run(
    value: float, total: int, expected: int
) -> None:
    assert resolve_interval(value, total) == expected


def test_the_prepared_loaders_step_batch_gives_the_total_batch() -> None:
    # split_batches: the loader's batch of 8 is shared by the 2 processes.
    args = _args(world_size=2, gradient_accumulation_steps=2)
    plan = plan_training(
        args, batches_per_epoch=10, num_examples=80, batch_size=8, step_batch_size=8
    )
    assert plan.total_train_batch_size == 16
    assert (
        plan_training(
            args, batches_per_epoch=10, num_examples=80, batch_size=8
        ).total_train_batch_size
        == 32
    )
