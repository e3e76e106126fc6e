"""Settings that cannot work are refused before training starts, not when they come due."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer_args import Seq2SeqTrainingArguments, TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Seq2SeqTrainer, Trainer


class Line(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class StepCounter(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def _data() -> list[dict[str, torch.Tensor]]:
    x = torch.linspace(-1, 1, 8).unsqueeze(1)
    return [{"x": x[i], "labels": 3 * x[i]} for i in range(8)]


def _args(tmp_path, arguments: type = TrainingArguments, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    return arguments(**settings)


# ------------------------------------------------------ evaluation without a dataset
def test_evaluating_during_training_without_an_eval_dataset_is_refused_before_any_step(
    tmp_path,
) -> None:
    counter = StepCounter()
    args = _args(tmp_path, eval_strategy="steps", eval_steps=3)
    trainer = Trainer(model=Line(), args=args, train_dataset=_data(), callbacks=[counter])
    with pytest.raises(ValueError, match=r"eval_strategy='steps'.*no eval_dataset"):
        trainer.train()
    assert counter.steps == 0


def test_an_eval_dataset_assigned_after_construction_is_accepted(tmp_path) -> None:
    args = _args(tmp_path, eval_strategy="epoch", num_train_epochs=1, max_steps=-1)
    trainer = Trainer(model=Line(), args=args, train_dataset=_data())
    trainer.eval_dataset = _data()
    trainer.train()
    assert any("eval_loss" in entry for entry in trainer.state.log_history)


def test_a_subclass_building_its_own_eval_dataloader_needs_no_eval_dataset(tmp_path) -> None:
    class OwnLoader(Trainer):
        def get_eval_dataloader(self, eval_dataset=None):
            return self._eval_dataloader(_data(), "evaluation")

    args = _args(tmp_path, eval_strategy="steps", eval_steps=2)
    trainer = OwnLoader(model=Line(), args=args, train_dataset=_data())
    trainer.train()
    assert any("eval_loss" in entry for entry in trainer.state.log_history)


def test_a_subclass_with_its_own_evaluate_needs_no_eval_dataset(tmp_path) -> None:
    class Scripted(Trainer):
        def evaluate(self, *args, **kwargs):
            return {"eval_loss": 1.0}

    args = _args(tmp_path, eval_strategy="steps", eval_steps=2)
    Scripted(model=Line(), args=args, train_dataset=_data()).train()


def test_the_seq2seq_trainer_is_refused_too(tmp_path) -> None:
    args = _args(tmp_path, eval_strategy="epoch", arguments=Seq2SeqTrainingArguments)
    trainer = Seq2SeqTrainer(model=Line(), args=args, train_dataset=_data())
    with pytest.raises(ValueError, match="no eval_dataset"):
        trainer.train()


# ------------------------------------------------------ batch-wise metrics
def _mean_error(prediction) -> dict[str, float]:
    return {"error": float(abs(prediction.predictions - prediction.label_ids).mean())}


def test_batch_eval_metrics_refuse_a_compute_metrics_without_compute_result(tmp_path) -> None:
    args = _args(tmp_path, batch_eval_metrics=True)
    with pytest.raises(ValueError, match=r"_mean_error\(\) has no `compute_result` parameter"):
        Trainer(model=Line(), args=args, compute_metrics=_mean_error)


def test_batch_eval_metrics_accept_compute_result_by_name_or_through_kwargs(tmp_path) -> None:
    def named(prediction, compute_result: bool = True):
        return _mean_error(prediction)

    def through_kwargs(prediction, **kwargs):
        return _mean_error(prediction)

    args = _args(tmp_path, batch_eval_metrics=True)
    for compute_metrics in (named, through_kwargs):
        trainer = Trainer(model=Line(), args=args, compute_metrics=compute_metrics)
        assert "eval_error" in trainer.evaluate(_data())


def test_a_compute_metrics_assigned_later_is_checked_when_training_starts(tmp_path) -> None:
    args = _args(tmp_path, batch_eval_metrics=True)
    trainer = Trainer(model=Line(), args=args, train_dataset=_data())
    trainer.compute_metrics = _mean_error
    with pytest.raises(ValueError, match="compute_result"):
        trainer.train()
    assert trainer.state.global_step == 0
