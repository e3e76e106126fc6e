"""``state.epoch`` with a train dataloader that has no length (an IterableDataset).

The reference counts such a run's epoch as the fraction of ``max_steps`` done (the
batches of ``max_steps * gradient_accumulation_steps`` micro-batches), restarting from
the epoch index when the stream ends and is read again.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import IterableDataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Stream(IterableDataset):
    """``size`` regression examples, then the end of the stream."""

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 2, generator=generator)

    def __iter__(self) -> Any:
        for row in self.x:
            yield {"x": row, "labels": row.sum(dim=0, keepdim=True)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _train(tmp_path: Any, size: int, **overrides: Any) -> Trainer:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    options.update(overrides)
    trainer = Trainer(model=_Net(), args=TrainingArguments(**options), train_dataset=_Stream(size))
    trainer.train()
    return trainer


def _logged_epochs(trainer: Trainer) -> list[float]:
    return [entry["epoch"] for entry in trainer.state.log_history if "loss" in entry]


def test_a_stream_logs_epochs_as_fractions_of_max_steps(tmp_path) -> None:
    trainer = _train(tmp_path, 100, max_steps=4, save_strategy="steps", save_steps=2)
    assert _logged_epochs(trainer) == [0.25, 0.5, 0.75, 1.0]
    assert trainer.state.log_history[-1]["epoch"] == 1.0  # the final metrics
    with open(os.path.join(tmp_path, "checkpoint-2", "trainer_state.json")) as handle:
        assert json.load(handle)["epoch"] == 0.5


def test_a_stream_that_ends_continues_from_the_epoch_index(tmp_path) -> None:
    # 4 examples in batches of 2: the stream ends after 2 of the 4 steps.
    assert _logged_epochs(_train(tmp_path, 4, max_steps=4)) == [0.25, 0.5, 1.25, 1.5]


def test_a_stream_counts_micro_batches_under_accumulation(tmp_path) -> None:
    trainer = _train(tmp_path, 100, max_steps=2, gradient_accumulation_steps=2)
    assert _logged_epochs(trainer) == [0.5, 1.0]
