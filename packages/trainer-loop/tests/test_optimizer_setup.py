"""Which optimizer and scheduler a Trainer trains with: a new schedule for every
``train()`` call, and transformers 5's ``optimizer_cls_and_kwargs`` argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 1)
        self.layer_norm = nn.LayerNorm(1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.layer_norm(self.linear(x)), labels)}


def _data() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{"x": torch.randn(3, generator=generator), "labels": torch.ones(1)} for _ in range(8)]


def _args(tmp_path: Path, **extra: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=4,
        learning_rate=0.1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        **extra,
    )


class _LearningRates(TrainerCallback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates.append(round(optimizer.param_groups[0]["lr"], 6))


def test_a_second_train_call_runs_a_new_schedule_on_the_same_optimizer(tmp_path) -> None:
    recorder = _LearningRates()
    trainer = Trainer(
        model=_Net(), args=_args(tmp_path), train_dataset=_data(), callbacks=[recorder]
    )
    trainer.train()
    first_rates, optimizer = list(recorder.rates), trainer.optimizer
    recorder.rates.clear()
    before = trainer.model.linear.weight.detach().clone()
    trainer.train()
    assert first_rates == [0.1, 0.075, 0.05, 0.025]
    assert recorder.rates == first_rates
    assert not torch.equal(trainer.model.linear.weight, before)
    assert trainer.optimizer is optimizer  # kept with its state, as the reference does


def test_a_scheduler_passed_by_the_user_is_kept_across_train_calls(tmp_path) -> None:
    model = _Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = Trainer(
        model=model,
        args=_args(tmp_path),
        train_dataset=_data(),
        optimizers=(optimizer, scheduler),
    )
    trainer.train()
    trainer.train()
    assert trainer.lr_scheduler is scheduler
    assert scheduler.last_epoch == 8


def test_optimizer_cls_and_kwargs_builds_the_optimizer_with_decay_groups(tmp_path) -> None:
    trainer = Trainer(
        model=_Net(),
        args=_args(tmp_path, weight_decay=0.01),
        train_dataset=_data(),
        optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.5, "momentum": 0.9}),
    )
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.defaults["lr"] == 0.5
    assert optimizer.defaults["momentum"] == 0.9
    decay, no_decay = optimizer.param_groups
    assert decay["params"] == [trainer.model.linear.weight]
    assert decay["weight_decay"] == 0.01
    assert len(no_decay["params"]) == 3  # the bias and the LayerNorm's two
    trainer.train()
    assert trainer.optimizer is optimizer


def test_optimizer_cls_and_kwargs_is_refused_with_an_optimizer(tmp_path) -> None:
    model = _Net()
    with pytest.raises(RuntimeError, match="optimizer_cls_and_kwargs"):
        Trainer(
            model=model,
            args=_args(tmp_path),
            optimizers=(torch.optim.SGD(model.parameters(), lr=0.1), None),
            optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.1}),
        )


def test_a_malformed_optimizer_cls_and_kwargs_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match="pair"):
        Trainer(model=_Net(), args=_args(tmp_path), optimizer_cls_and_kwargs=torch.optim.SGD)


class _OwnSchedule(Trainer):
    """An override written against the reference's call, ``create_scheduler(
    num_training_steps=...)``: it takes no optimizer."""

    def create_scheduler(self, num_training_steps):
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 0.5)
        return self.lr_scheduler


def test_a_create_scheduler_override_without_an_optimizer_parameter_trains(tmp_path) -> None:
    recorder = _LearningRates()
    trainer = _OwnSchedule(
        model=_Net(), args=_args(tmp_path), train_dataset=_data(), callbacks=[recorder]
    )
    trainer.train()
    assert recorder.rates == [0.05] * 4


def test_create_optimizer_and_scheduler_calls_create_scheduler_as_the_reference(
    tmp_path,
) -> None:
    trainer = _OwnSchedule(model=_Net(), args=_args(tmp_path), train_dataset=_data())
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    assert trainer.lr_scheduler.optimizer is trainer.optimizer
