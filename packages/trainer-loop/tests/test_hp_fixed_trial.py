"""Re-training a search's best trial with ``train(trial=optuna.trial.FixedTrial(...))``
and no search running: the trainer state records the trial's values, as the
reference does."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer

optuna = pytest.importorskip("optuna")


class _Net(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x) * self.scale
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _model_init(trial) -> nn.Module:
    return _Net(trial.suggest_float("scale", 0.1, 1.0) if trial is not None else 1.0)


def _data() -> list[dict[str, torch.Tensor]]:
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    return [{"x": row, "labels": row.sum(dim=0, keepdim=True)} for row in x]


def test_a_fixed_trial_outside_a_search_records_what_model_init_suggested(tmp_path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", max_steps=2,
        save_strategy="steps", save_steps=2, per_device_train_batch_size=4,
    )  # fmt: skip
    trainer = Trainer(args=args, model_init=_model_init, train_dataset=_data())
    trainer.train(trial=optuna.trial.FixedTrial({"scale": 0.5}))
    assert trainer.state.is_hyper_param_search
    assert trainer.state.trial_params == {"scale": 0.5}
    with open(os.path.join(tmp_path, "checkpoint-2", "trainer_state.json")) as file:
        assert json.load(file)["trial_params"] == {"scale": 0.5}
