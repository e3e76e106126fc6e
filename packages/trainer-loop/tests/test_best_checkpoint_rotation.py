"""``save_total_limit=1`` with ``load_best_model_at_end``: which checkpoints remain.

As in the reference: the newest checkpoint always remains (a resumed run starts there)
and so does the best one; the limit is exceeded only when they differ.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import EvalPrediction
from trainer_loop import Trainer


class _Data(Dataset):
    def __init__(self, size: int = 8) -> None:
        self.x = torch.linspace(-1, 1, size).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": 3 * self.x[index]}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _checkpoints_left(tmp_path: Any, scores: list[float]) -> list[str]:
    """Train 6 steps, evaluating and saving every 2 with the given scores in turn."""
    remaining = iter(scores)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        return {"score": next(remaining)}

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=6,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="score",
        greater_is_better=True,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    data = _Data()
    trainer = Trainer(
        model=_Net(),
        args=args,
        train_dataset=data,
        eval_dataset=data,
        compute_metrics=compute_metrics,
    )
    trainer.train()
    return sorted(name for name in os.listdir(tmp_path) if name.startswith("checkpoint-"))


def test_only_the_newest_remains_when_it_is_the_best(tmp_path) -> None:
    assert _checkpoints_left(tmp_path, [1.0, 2.0, 3.0]) == ["checkpoint-6"]


def test_an_older_best_remains_beside_the_newest(tmp_path) -> None:
    assert _checkpoints_left(tmp_path, [3.0, 2.0, 1.0]) == ["checkpoint-2", "checkpoint-6"]
