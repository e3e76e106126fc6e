"""``save_total_limit=1`` with ``load_best_model_at_end``: which checkpoints remain.

As in the reference: during training the newest checkpoint always remains (a resumed run
starts there) and so does the best one; the limit is exceeded only when they differ.
Once training is over, only the best one remains.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import EvalPrediction, TrainerCallback
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


def _listing(folder: Any) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("checkpoint-"))


class _ListOnSave(TrainerCallback):
    """Records the checkpoint folders present after each save (and rotation)."""

    def __init__(self, folder: Any) -> None:
        self.folder, self.seen = folder, []

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seen.append(_listing(self.folder))


def _checkpoints_left(tmp_path: Any, scores: list[float]) -> tuple[list[str], list[str]]:
    """Train 6 steps, evaluating and saving every 2 with the given scores in turn.

    Returns the checkpoints present after the last save, and after ``train()``.
    """
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
        callbacks=[recorder := _ListOnSave(tmp_path)],
    )
    trainer.train()
    return recorder.seen[-1], _listing(tmp_path)


def test_only_the_newest_remains_when_it_is_the_best(tmp_path) -> None:
    assert _checkpoints_left(tmp_path, [1.0, 2.0, 3.0]) == (["checkpoint-6"], ["checkpoint-6"])


def test_an_older_best_remains_beside_the_newest_until_training_ends(tmp_path) -> None:
    during, after = _checkpoints_left(tmp_path, [3.0, 2.0, 1.0])
    assert during == ["checkpoint-2", "checkpoint-6"]
    assert after == ["checkpoint-2"]  # then, as in the reference, only the best
