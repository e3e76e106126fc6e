"""``<prefix>_model_preparation_time`` is reported as transformers 5 reports it.

An evaluation or prediction before any training prepares the model and times that;
every later loop of the same trainer repeats the time. A trainer that trained first
never reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        logits = self.linear(x).squeeze(-1)
        return {"loss": ((logits - labels) ** 2).mean(), "logits": logits}


def _trainer(tmp_path: Path) -> Trainer:
    data = [{"x": torch.full((2,), float(i)), "labels": torch.tensor(float(i))} for i in range(4)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    return Trainer(model=_Regressor(), args=args, train_dataset=data, eval_dataset=data)


def test_an_evaluation_before_training_reports_it_from_then_on(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    first = trainer.evaluate()
    seconds = first["eval_model_preparation_time"]
    assert isinstance(seconds, float) and seconds >= 0.0
    assert list(first)[:2] == ["eval_loss", "eval_model_preparation_time"]
    assert trainer.evaluate()["eval_model_preparation_time"] == seconds
    assert trainer.predict(trainer.eval_dataset).metrics["test_model_preparation_time"] == seconds
    trainer.train()
    assert trainer.evaluate()["eval_model_preparation_time"] == seconds


def test_a_trainer_that_trained_first_never_reports_it(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path)
    trainer.train()
    assert "eval_model_preparation_time" not in trainer.evaluate()
    assert not hasattr(trainer, "model_preparation_time")
