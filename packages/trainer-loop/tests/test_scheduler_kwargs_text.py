"""``lr_scheduler_kwargs`` read from JSON or a command line may hold numbers as text
(``{"power": "0.5"}``): where the schedule expects a number the text is read as one, and
text that is no number is refused naming the key, instead of a ``TypeError`` from deep
inside the schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer_args import TrainingArguments
from trainer_loop import create_scheduler, get_scheduler

LR = 0.1


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)


def _rates(scheduler: Any, steps: int = 6) -> list[float]:
    rates = []
    for _ in range(steps):
        rates.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(
    ("name", "as_text", "as_number"),
    [
        ("polynomial", {"power": "0.5", "lr_end": "1e-4"}, {"power": 0.5, "lr_end": 1e-4}),
        ("cosine_with_restarts", {"num_cycles": "2"}, {"num_cycles": 2}),
        ("cosine_with_min_lr", {"min_lr_rate": " 0.1 "}, {"min_lr_rate": 0.1}),
        ("warmup_stable_decay", {"num_decay_steps": "3"}, {"num_decay_steps": 3}),
        ("inverse_sqrt", {"timescale": "4"}, {"timescale": 4}),
    ],
)
def test_numbers_given_as_text_schedule_like_numbers(
    name: str, as_text: dict[str, str], as_number: dict[str, float]
) -> None:
    expected = _rates(get_scheduler(name, _optimizer(), 1, 10, as_number))
    assert _rates(get_scheduler(name, _optimizer(), 1, 10, as_text)) == expected


def test_a_plateau_schedule_reads_numbers_and_keeps_its_words() -> None:
    scheduler = get_scheduler(
        "reduce_lr_on_plateau",
        _optimizer(),
        scheduler_specific_kwargs={"patience": "2", "mode": "max"},
    )
    assert scheduler.patience == 2 and isinstance(scheduler.patience, int)
    assert scheduler.mode == "max"


def test_an_integer_written_as_a_whole_float_is_an_integer() -> None:
    scheduler = get_scheduler(
        "reduce_lr_on_plateau", _optimizer(), scheduler_specific_kwargs={"patience": "2.0"}
    )
    assert scheduler.patience == 2 and isinstance(scheduler.patience, int)


def test_text_that_is_no_number_is_refused_naming_the_key() -> None:
    with pytest.raises(
        ValueError, match=r"lr_scheduler_kwargs\['power'\]='fast'.*'polynomial'.*a number"
    ):
        get_scheduler("polynomial", _optimizer(), 1, 10, {"power": "fast"})


def test_a_fraction_where_a_count_belongs_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lr_scheduler_kwargs\['num_cycles'\]='2.5'.*an integer"):
        get_scheduler("cosine_with_restarts", _optimizer(), 1, 10, {"num_cycles": "2.5"})


def test_a_step_count_given_as_text_is_not_taken_for_a_second_value() -> None:
    scheduler = get_scheduler("linear", _optimizer(), 1, 10, {"num_training_steps": "10"})
    assert _rates(scheduler) == _rates(get_scheduler("linear", _optimizer(), 1, 10))


def test_json_text_from_the_arguments_reaches_the_schedule_as_numbers(tmp_path: Path) -> None:
    args = TrainingArguments(
        str(tmp_path),
        lr_scheduler_type="polynomial",
        lr_scheduler_kwargs='{"power": "2", "lr_end": "0.0"}',
    )
    expected = get_scheduler("polynomial", _optimizer(), 0, 10, {"power": 2.0, "lr_end": 0.0})
    assert _rates(create_scheduler(args, _optimizer(), 10)) == _rates(expected)
