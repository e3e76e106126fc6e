"""Best-model settings changed after ``TrainingArguments`` was built are read as they
would have been at construction, or refused before the first step."""

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
        prediction = self.linear(x).squeeze(-1)
        return {"loss": ((prediction - labels) ** 2).mean(), "logits": prediction}


def _trainer(tmp_path: Path, **kwargs: Any) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=8,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=2,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    rows = [{"x": torch.full((2,), 0.1 * i), "labels": torch.tensor(0.0)} for i in range(8)]
    return Trainer(model=_Regressor(), args=args, train_dataset=rows, eval_dataset=rows, **kwargs)


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("load_best_model_at_end", True, "load_best_model_at_end=True"),
        ("save_strategy", "best", 'save_strategy="best"'),
    ],
)
def test_best_model_tracking_switched_on_later_without_a_metric_is_refused(
    tmp_path: Path, setting: str, value: Any, named: str
) -> None:
    trainer = _trainer(tmp_path)
    setattr(trainer.args, setting, value)
    with pytest.raises(ValueError, match=f"{named} needs metric_for_best_model"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert not any(tmp_path.glob("checkpoint-*"))


def test_a_metric_named_like_a_loss_set_later_is_minimised(tmp_path: Path) -> None:
    """With greater_is_better left unset, 'mlm_loss' is a loss: the lowest value wins."""
    reported = iter([5.0, 1.0, 3.0, 2.0])
    trainer = _trainer(tmp_path, compute_metrics=lambda prediction: {"mlm_loss": next(reported)})
    trainer.args.load_best_model_at_end = True
    trainer.args.metric_for_best_model = "mlm_loss"
    trainer.train()
    assert trainer.state.best_metric == 1.0
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-4")
