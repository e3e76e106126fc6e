"""The Trainer's optimizer methods of transformers 5: ``create_optimizer(model)``,
``get_learning_rates``, ``get_optimizer_group`` and ``get_num_trainable_parameters``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Net(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(width, 2)
        self.norm = nn.LayerNorm(2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.norm(self.linear(x)), labels)}


def _trainer(tmp_path: Path, model: nn.Module | None = None) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=0.25,
        weight_decay=0.1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    return Trainer(model=model or _Net(), args=args)


def _ids(params: list[nn.Parameter]) -> list[int]:
    return [id(p) for p in params]


@pytest.mark.parametrize("by_keyword", [False, True])
def test_create_optimizer_groups_the_model_it_is_given(tmp_path: Path, by_keyword: bool) -> None:
    trainer = _trainer(tmp_path)
    other = _Net(width=5)
    optimizer = (
        trainer.create_optimizer(model=other) if by_keyword else trainer.create_optimizer(other)
    )
    decay, no_decay = optimizer.param_groups
    assert _ids(decay["params"]) == [id(other.linear.weight)]
    assert _ids(no_decay["params"]) == _ids([other.linear.bias, other.norm.weight, other.norm.bias])
    assert trainer.optimizer is optimizer
    assert trainer.create_optimizer() is optimizer  # made once, as in the reference


def test_the_queries_need_an_optimizer(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    with pytest.raises(ValueError, match="no optimizer yet"):
        trainer.get_learning_rates()
    with pytest.raises(ValueError, match="create_optimizer"):
        trainer.get_optimizer_group()


def test_learning_rates_are_one_per_group(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    optimizer = trainer.create_optimizer()
    assert trainer.get_learning_rates() == [0.25, 0.25]
    optimizer.param_groups[1]["lr"] = 0.5
    assert trainer.get_learning_rates() == [0.25, 0.5]


def test_optimizer_group_of_a_parameter_or_of_its_name(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    decay, no_decay = trainer.create_optimizer().param_groups
    model = trainer.model
    assert trainer.get_optimizer_group(model.linear.weight) is decay
    assert trainer.get_optimizer_group(model.norm.bias) is no_decay  # not the first of its group
    assert trainer.get_optimizer_group("norm.weight") is no_decay
    every_group = [decay["params"], no_decay["params"]]
    assert trainer.get_optimizer_group() == every_group
    # Not in any group (or no such name): every group's parameters, as the reference returns.
    assert trainer.get_optimizer_group(nn.Parameter(torch.zeros(2))) == every_group
    assert trainer.get_optimizer_group("no.such.parameter") == every_group


def test_trainable_parameters_are_counted_by_element(tmp_path: Path) -> None:
    model = _Net()
    trainer = _trainer(tmp_path, model)
    assert trainer.get_num_trainable_parameters() == 3 * 2 + 2 + 2 + 2
    model.linear.requires_grad_(False)
    assert trainer.get_num_trainable_parameters() == 4
