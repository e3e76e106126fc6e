"""The logged ``learning_rate`` is the rate the step just taken used.

transformers 5 reads it before the scheduler moves on (v4.34 logged the next step's
rate), so a linear schedule from 1.0 over 4 steps logs 1.0, 0.75, 0.5, 0.25.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        return {"loss": ((self.linear(x).squeeze(-1) - labels) ** 2).mean()}


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [("linear", [1.0, 0.75, 0.5, 0.25]), ("constant", [1.0, 1.0, 1.0, 1.0])],
)
def test_each_log_shows_the_rate_its_step_used(
    tmp_path: Path, schedule: str, expected: list[float]
) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=4,
        logging_steps=1,
        optim="sgd",
        learning_rate=1.0,
        lr_scheduler_type=schedule,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    rows = [{"x": torch.full((2,), 0.01 * i), "labels": torch.tensor(0.0)} for i in range(8)]
    trainer = Trainer(model=_Regressor(), args=args, train_dataset=rows)
    trainer.train()
    logged = [entry["learning_rate"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged == pytest.approx(expected)


def _plateau_trainer(tmp_path: Path, **overrides: Any) -> Trainer:
    rows = [{"x": torch.full((2,), 0.01 * i), "labels": torch.tensor(0.0)} for i in range(8)]
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 2,
        "max_steps": 4,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "lr_scheduler_type": "reduce_lr_on_plateau",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
    }
    args = TrainingArguments(**{**settings, **overrides})
    evals = {"a": rows[:4], "b": rows[4:]}
    return Trainer(model=_Regressor(), args=args, train_dataset=rows, eval_dataset=evals)


def test_plateau_schedule_with_several_eval_sets_needs_the_metric_named(tmp_path: Path) -> None:
    """Each set reports eval_<name>_loss: without a name the schedule has nothing to follow,
    which is said before the first step rather than at the first evaluation."""
    trainer = _plateau_trainer(tmp_path)
    with pytest.raises(ValueError, match="metric_for_best_model='eval_a_loss'"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_plateau_schedule_follows_the_named_eval_set(tmp_path: Path) -> None:
    trainer = _plateau_trainer(tmp_path, metric_for_best_model="eval_b_loss")
    trainer.train()
    assert trainer.state.global_step == 4
    assert trainer.lr_scheduler.best == min(
        entry["eval_b_loss"] for entry in trainer.state.log_history if "eval_b_loss" in entry
    )


def test_plateau_schedule_on_a_metric_never_reported_names_those_reported(
    tmp_path: Path,
) -> None:
    trainer = _plateau_trainer(tmp_path, metric_for_best_model="eval_b_accurcy")
    trainer.compute_metrics = lambda prediction: {}  # so the name cannot be refused up front
    with pytest.raises(KeyError, match=r"'eval_b_accurcy'.*eval_a_loss, eval_a_runtime"):
        trainer.train()


def test_plateau_schedule_trusts_an_evaluate_override_with_several_eval_sets(
    tmp_path: Path,
) -> None:
    """A subclass's evaluate may report keys of its own: here each set's call also
    reports its loss as eval_loss, which the schedule then follows."""

    class Averaging(Trainer):
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            return {**metrics, "eval_loss": metrics[f"{metric_key_prefix}_loss"]}

    base = _plateau_trainer(tmp_path)
    trainer = Averaging(
        model=base.model, args=base.args, train_dataset=base.train_dataset,
        eval_dataset=base.eval_dataset,
    )  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 4
