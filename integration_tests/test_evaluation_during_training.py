"""Evaluation inside train(): schedules, delays, best-metric tracking, reports and files."""

from __future__ import annotations

import json
import os

import pytest

from trainer import Trainer, TrainingArguments
from trainer_testing.models import RegressionDataset, RegressionModel


def _args(output_dir: str, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=output_dir,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=0.1,
        num_train_epochs=2,  # 64 samples / 8 = 8 steps per epoch, 16 in all
        logging_steps=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def _eval_steps(trainer: Trainer, key: str = "eval_loss") -> list[int]:
    return [entry["step"] for entry in trainer.state.log_history if key in entry]


def _trainer(args: TrainingArguments, **kwargs) -> Trainer:
    return Trainer(
        model=RegressionModel(),
        args=args,
        train_dataset=RegressionDataset(64),
        eval_dataset=RegressionDataset(24, seed=1),
        **kwargs,
    )


def test_eval_steps_default_to_logging_steps(tmp_output) -> None:
    trainer = _trainer(_args(tmp_output, eval_strategy="steps"))
    trainer.train()
    assert _eval_steps(trainer) == [4, 8, 12, 16]


def test_eval_delay_skips_the_early_evaluations(tmp_output) -> None:
    trainer = _trainer(_args(tmp_output, eval_strategy="steps", eval_steps=2, eval_delay=9))
    trainer.train()
    assert _eval_steps(trainer) == [10, 12, 14, 16]
    by_epoch = _trainer(_args(tmp_output, eval_strategy="epoch", eval_delay=2))
    by_epoch.train()
    assert _eval_steps(by_epoch) == [16]


def test_each_named_eval_dataset_is_evaluated_during_training(tmp_output) -> None:
    trainer = Trainer(
        model=RegressionModel(),
        args=_args(tmp_output, eval_strategy="epoch"),
        train_dataset=RegressionDataset(64),
        eval_dataset={"near": RegressionDataset(8, seed=1), "far": RegressionDataset(8, seed=2)},
    )
    trainer.train()
    assert _eval_steps(trainer, "eval_near_loss") == [8, 16]
    assert _eval_steps(trainer, "eval_far_loss") == [8, 16]


def test_the_best_metric_and_its_checkpoint_are_tracked(tmp_output) -> None:
    def negative_error(prediction):
        predictions, labels = prediction
        return {"neg_error": -float(abs(predictions - labels).mean())}

    args = _args(
        tmp_output,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="steps",
        save_steps=4,
        metric_for_best_model="neg_error",
        greater_is_better=True,
    )
    trainer = _trainer(args, compute_metrics=negative_error)
    trainer.train()
    scores = {
        e["step"]: e["eval_neg_error"] for e in trainer.state.log_history if "eval_neg_error" in e
    }
    best_step = max(scores, key=scores.get)
    assert trainer.state.best_metric == pytest.approx(scores[best_step])
    assert trainer.state.best_model_checkpoint == os.path.join(
        tmp_output, f"checkpoint-{best_step}"
    )


def test_train_evaluate_predict_then_report_and_save_like_the_example_scripts(
    tmp_output, capsys
) -> None:
    trainer = _trainer(_args(tmp_output))
    train_metrics = trainer.train().metrics
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)
    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    prediction = trainer.predict(RegressionDataset(10, seed=3))
    trainer.save_metrics("test", prediction.metrics)
    trainer.save_state()

    printed = capsys.readouterr().out
    assert "***** train metrics *****" in printed and "***** eval metrics *****" in printed
    assert prediction.predictions.shape == (10,)
    with open(os.path.join(tmp_output, "all_results.json"), encoding="utf-8") as handle:
        combined = json.load(handle)
    assert {"train_loss", "eval_loss", "test_loss", "epoch"} <= set(combined)
    with open(os.path.join(tmp_output, "trainer_state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    assert state["global_step"] == 16
    assert state["log_history"][-1]["eval_loss"] == pytest.approx(eval_metrics["eval_loss"])
