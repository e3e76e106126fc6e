"""What cannot train or evaluate is refused where it first shows (before the first step,
or at the first batch, the earliest it can be seen), with a message saying what to
change, never by torch internals and never after a checkpoint was half written: data
that would train nothing, a loss that is not one number, metrics that are not a dict of
numbers, a ``metric_for_best_model`` no evaluation reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer, default_data_collator
from trainer_loop._columns import RemoveColumnsCollator, remove_unused_columns


class _Net(nn.Module):
    """``per_example=True`` returns a loss per example; ``logits_only`` a tuple of logits."""

    def __init__(self, per_example: bool = False, logits_only: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.per_example, self.logits_only = per_example, logits_only

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        out = self.linear(x).squeeze(-1)
        if self.logits_only:
            return (out,)
        if labels is None:
            return {"logits": out}
        loss = (out - labels) ** 2
        return {"loss": loss if self.per_example else loss.mean(), "logits": out}


class _Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def _data(count: int = 8) -> list[dict[str, torch.Tensor]]:
    return [{"x": torch.full((3,), float(i)), "labels": torch.tensor(1.0)} for i in range(count)]


def _args(tmp_path: Path, **extra: Any) -> TrainingArguments:
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        max_steps=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(extra)
    return TrainingArguments(**settings)


# ------------------------------------------------------------------------- data


@pytest.mark.parametrize("max_steps", [-1, 3])
def test_an_empty_training_set_is_refused_before_any_step(tmp_path, max_steps: int) -> None:
    steps = _Steps()
    args = _args(tmp_path, max_steps=max_steps)
    trainer = Trainer(model=_Net(), args=args, train_dataset=[], callbacks=[steps])
    with pytest.raises(ValueError, match=r"train_dataset is empty \(0 examples\)"):
        trainer.train()
    assert steps.steps == 0


@pytest.mark.parametrize("max_steps", [-1, 3])
def test_drop_last_dropping_the_only_batch_is_refused_instead_of_training_nothing(
    tmp_path, max_steps: int
) -> None:
    args = _args(
        tmp_path, max_steps=max_steps, per_device_train_batch_size=4, dataloader_drop_last=True
    )
    trainer = Trainer(model=_Net(), args=args, train_dataset=_data(3))
    with pytest.raises(ValueError, match=r"no batch \(3 examples.*dataloader_drop_last=True"):
        trainer.train()


def test_an_evaluation_without_batches_warns_that_nothing_was_evaluated(tmp_path, caplog) -> None:
    args = _args(tmp_path, per_device_eval_batch_size=4, dataloader_drop_last=True)
    trainer = Trainer(model=_Net(), args=args, eval_dataset=_data(3))
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        metrics = trainer.evaluate()
    assert "eval_loss" not in metrics
    assert "nothing will be evaluated" in caplog.text


@pytest.mark.parametrize(
    "example", [torch.zeros(3), [0.0, 1.0, 2.0], "some text"], ids=["tensor", "list", "str"]
)
def test_examples_that_are_not_dicts_get_the_shape_they_need(example: Any) -> None:
    with pytest.raises(TypeError, match=r"each example as a dict.*model\(\*\*batch\)"):
        default_data_collator([example, example])


def test_a_dataset_of_tensors_stops_at_the_first_batch_with_that_message(tmp_path) -> None:
    trainer = Trainer(model=_Net(), args=_args(tmp_path), train_dataset=[torch.zeros(3)] * 4)
    with pytest.raises(TypeError, match=r"Cannot collate examples of type Tensor"):
        trainer.train()


def test_examples_holding_only_text_are_refused_by_the_collator() -> None:
    with pytest.raises(ValueError, match=r"all text or None \(keys: text, id\).*Tokenize"):
        default_data_collator([{"text": "a b", "id": None}, {"text": "c", "id": None}])


def test_examples_none_of_whose_keys_the_model_takes_are_refused() -> None:
    collator = RemoveColumnsCollator(
        default_data_collator, ["x", "labels"], None, description="training"
    )
    with pytest.raises(ValueError, match=r"No key of the examples of the training set.*'sentence'"):
        collator([{"sentence": [1, 2]}, {"sentence": [3, 4]}])


def test_a_text_column_dropped_leaving_only_labels_is_warned_about(caplog) -> None:
    datasets = pytest.importorskip("datasets")
    raw = datasets.Dataset.from_dict({"text": ["a b", "c"], "label": [0, 1]})
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        kept = remove_unused_columns(raw, _Net(), description="training")
    assert kept.column_names == ["label"]
    assert "the model will receive no inputs (dropped: text). Tokenize" in caplog.text


# ----------------------------------------------------------------------- losses
def test_the_logits_of_a_model_without_loss_are_not_taken_for_its_loss(tmp_path) -> None:
    trainer = Trainer(model=_Net(logits_only=True), args=_args(tmp_path), train_dataset=_data())
    with pytest.raises(ValueError, match=r"tensor of shape \(2,\) as the first element.*labels"):
        trainer.train()


def test_a_per_example_loss_is_explained_unless_a_subclass_reduces_it(tmp_path) -> None:
    trainer = Trainer(model=_Net(per_example=True), args=_args(tmp_path), train_dataset=_data())
    with pytest.raises(ValueError, match=r"tensor of shape \(2,\) under 'loss'.*loss.mean\(\)"):
        trainer.train()

    class Reducing(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
            return (loss.mean(), outputs) if return_outputs else loss.mean()

    reducing = Reducing(model=_Net(per_example=True), args=_args(tmp_path), train_dataset=_data())
    assert reducing.train().global_step == 2
    assert "eval_loss" in reducing.evaluate(_data(4))


def test_a_compute_loss_func_returning_none_is_named(tmp_path) -> None:
    trainer = Trainer(
        model=_Net(),
        args=_args(tmp_path),
        train_dataset=_data(),
        compute_loss_func=lambda outputs, labels, num_items_in_batch=None: None,
    )
    with pytest.raises(ValueError, match=r"compute_loss returned None"):
        trainer.train()


# ---------------------------------------------------------------------- metrics
@pytest.mark.parametrize("returned", [0.5, None, [("accuracy", 1.0)]])
def test_compute_metrics_must_return_a_dict(tmp_path, returned: Any) -> None:
    trainer = Trainer(
        model=_Net(), args=_args(tmp_path), compute_metrics=lambda prediction: returned
    )
    with pytest.raises(TypeError, match=r"compute_metrics returned .*must return a dict"):
        trainer.evaluate(_data(4))


def test_batch_metrics_may_return_none_before_the_last_batch(tmp_path) -> None:
    seen: list[bool] = []

    def accumulate(prediction, compute_result: bool = False):
        seen.append(compute_result)
        return {"batches": float(len(seen))} if compute_result else None

    args = _args(tmp_path, batch_eval_metrics=True)
    trainer = Trainer(model=_Net(), args=args, compute_metrics=accumulate)
    assert trainer.evaluate(_data(6))["eval_batches"] == 3.0


def _array_metrics(prediction) -> dict[str, Any]:
    return {"per_class": np.array([0.5, 0.25])}


def test_metrics_a_checkpoint_cannot_hold_are_refused_at_the_evaluation(tmp_path) -> None:
    steps = _Steps()
    args = _args(
        tmp_path, max_steps=4, eval_strategy="steps", eval_steps=1, save_strategy="steps",
        save_steps=2,
    )  # fmt: skip
    trainer = Trainer(
        model=_Net(), args=args, train_dataset=_data(), eval_dataset=_data(4),
        compute_metrics=_array_metrics, callbacks=[steps],
    )  # fmt: skip
    with pytest.raises(TypeError, match=r"trainer_state.json cannot hold: 'per_class'"):
        trainer.train()
    assert steps.steps == 1  # the first evaluation, before the first checkpoint
    assert not any(tmp_path.glob("checkpoint-*"))
    args = _args(tmp_path, eval_strategy="steps", eval_steps=1)  # no checkpoint: kept as is
    trainer = Trainer(
        model=_Net(), args=args, train_dataset=_data(), eval_dataset=_data(4),
        compute_metrics=_array_metrics,
    )  # fmt: skip
    trainer.train()
    assert isinstance(trainer.evaluate()["eval_per_class"], np.ndarray)


def test_save_metrics_writes_arrays_as_lists_and_never_half_a_file(tmp_path) -> None:
    trainer = Trainer(model=_Net(), args=_args(tmp_path))
    trainer.save_metrics("eval", {"eval_per_class": np.array([0.5, 0.25])})
    written = json.loads((tmp_path / "eval_results.json").read_text())
    assert written == {"eval_per_class": [0.5, 0.25]}
    with pytest.raises(TypeError, match=r"cannot write a object as JSON"):
        trainer.save_metrics("test", {"test_thing": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all_results.json", "eval_results.json"]


# ------------------------------------------------------------ metric_for_best_model
class _AddsAccuracy(TrainerCallback):
    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics["eval_accuracy"] = 1.0 - metrics["eval_loss"]


def _best_args(tmp_path: Path, metric: str) -> TrainingArguments:
    return _args(
        tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2, save_strategy="steps",
        save_steps=2, load_best_model_at_end=True, metric_for_best_model=metric,
    )  # fmt: skip


def test_a_best_metric_no_evaluation_reports_is_refused_before_the_first_step(tmp_path) -> None:
    steps = _Steps()
    trainer = Trainer(
        model=_Net(), args=_best_args(tmp_path, "accuracy"), train_dataset=_data(),
        eval_dataset=_data(4), callbacks=[steps],
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"metric_for_best_model='accuracy'.*no compute_metrics"):
        trainer.train()
    assert steps.steps == 0
    # A metric the evaluation reports, or one a callback adds, is accepted.
    for metric, callbacks in (("eval_loss", []), ("accuracy", [_AddsAccuracy()])):
        trainer = Trainer(
            model=_Net(), args=_best_args(tmp_path, metric), train_dataset=_data(),
            eval_dataset=_data(4), callbacks=callbacks,
        )  # fmt: skip
        trainer.train()
        assert trainer.state.best_metric is not None


def test_a_misspelt_best_metric_stops_training_after_saving_the_checkpoint_due(tmp_path) -> None:
    """compute_metrics reports "accuracy", the arguments name "acurracy": the first
    evaluation raises, naming what it returned, once the checkpoint of that step is
    written (the steps trained so far are kept)."""
    trainer = Trainer(
        model=_Net(), args=_best_args(tmp_path, "acurracy"), train_dataset=_data(),
        eval_dataset=_data(4), compute_metrics=lambda prediction: {"accuracy": 0.5},
    )  # fmt: skip
    with pytest.raises(KeyError, match=r"returned no 'eval_acurracy'.*eval_accuracy"):
        trainer.train()
    assert (Path(trainer.args.output_dir) / "checkpoint-2" / "optimizer.pt").is_file()
