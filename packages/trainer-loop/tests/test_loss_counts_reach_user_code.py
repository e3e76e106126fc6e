"""The loss-item count and the attributes around it reach user code as under the reference.

transformers hands ``num_items_in_batch`` to ``compute_loss_func``, to overrides of
``training_step`` / ``compute_loss`` and to models reading it from ``**kwargs`` on every
step, with or without gradient accumulation; overrides copied from it read
``model_accepts_loss_kwargs`` and ``current_gradient_accumulation_steps``. A loop that
skips the count for a lone micro-batch (its own mean needs none) must not skip it there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import IterableDataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_testing.models import VectorRegressionModel

_Regressor = VectorRegressionModel  # a plain module: no **kwargs in forward


class _CountReadingRegressor(_Regressor):
    """A model of the user's that divides a summed loss by the count it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.counts_seen: list[Any] = []

    def forward(  # type: ignore[override]  # adds **kwargs
        self, x: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        count = kwargs.get("num_items_in_batch")
        self.counts_seen.append(count)
        logits = self.linear(x).squeeze(-1)
        loss = ((logits - labels) ** 2).sum() / (labels.numel() if count is None else count)
        return {"loss": loss, "logits": logits}


def _examples(count: int = 8, with_labels: bool = True) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    xs = torch.randn(count, 4, generator=generator)
    if with_labels:
        return [{"x": x, "labels": x.sum()} for x in xs]
    return [{"x": x} for x in xs]


def _args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
        "learning_rate": 0.1,
    }
    settings.update(overrides)
    return TrainingArguments(**settings)


def _accumulating(tmp_path: Path) -> TrainingArguments:
    """Windows of two micro-batches: the count is taken, so only the setting keeps it
    from the model."""
    return _args(tmp_path, per_device_train_batch_size=2, gradient_accumulation_steps=2)


def test_compute_loss_func_gets_the_count_without_accumulation(tmp_path: Path) -> None:
    counts: list[Any] = []

    def summed_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> Any:
        counts.append(num_items_in_batch)
        return ((outputs["logits"] - labels) ** 2).sum() / num_items_in_batch

    trainer = Trainer(
        model=_Regressor(),
        args=_args(tmp_path),
        train_dataset=_examples(),
        compute_loss_func=summed_loss,
    )
    trainer.train()
    assert [int(count) for count in counts] == [4, 4]


def test_compute_loss_func_is_called_without_labels(tmp_path: Path) -> None:
    seen: list[Any] = []

    class _Unlabelled(_Regressor):
        def forward(self, x: torch.Tensor) -> dict[str, Any]:  # type: ignore[override]
            return {"logits": self.linear(x).squeeze(-1)}

    def label_free_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        seen.append(labels)
        return outputs["logits"].pow(2).mean()

    trainer = Trainer(
        model=_Unlabelled(),
        args=_args(tmp_path, label_names=[]),
        train_dataset=_examples(with_labels=False),
        compute_loss_func=label_free_loss,
    )
    output = trainer.train()
    assert seen == [None, None]
    assert output.global_step == 2


def test_model_reading_the_count_from_kwargs_receives_it(tmp_path: Path) -> None:
    model = _CountReadingRegressor()
    trainer = Trainer(model=model, args=_args(tmp_path), train_dataset=_examples())
    assert trainer.model_accepts_loss_kwargs is True
    trainer.train()
    assert [int(count) for count in model.counts_seen] == [4, 4]


def test_plain_model_does_not_accept_loss_kwargs(tmp_path: Path) -> None:
    trainer = Trainer(model=_Regressor(), args=_args(tmp_path), train_dataset=_examples())
    assert trainer.model_accepts_loss_kwargs is False


def test_setting_model_accepts_loss_kwargs_false_keeps_the_count_from_the_model(
    tmp_path: Path,
) -> None:
    model = _CountReadingRegressor()
    trainer = Trainer(model=model, args=_accumulating(tmp_path), train_dataset=_examples())
    trainer.model_accepts_loss_kwargs = False
    trainer.train()
    assert trainer.model_accepts_loss_kwargs is False
    assert model.counts_seen == [None] * 4


def test_subclass_attribute_declares_model_accepts_loss_kwargs(tmp_path: Path) -> None:
    class _NoLossKwargs(Trainer):
        model_accepts_loss_kwargs = False

    model = _CountReadingRegressor()
    _NoLossKwargs(model=model, args=_accumulating(tmp_path), train_dataset=_examples()).train()
    assert model.counts_seen == [None] * 4


def test_training_step_override_reads_the_window_and_the_count(tmp_path: Path) -> None:
    seen: list[tuple[int, Any]] = []

    class _Recording(Trainer):
        def training_step(
            self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
        ) -> torch.Tensor:
            seen.append((self.current_gradient_accumulation_steps, num_items_in_batch))
            return super().training_step(model, inputs, num_items_in_batch)

    # 8 examples in micro-batches of 2, windows of 3: a full window, then one of 1.
    args = _args(
        tmp_path,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=3,
        max_steps=-1,
        num_train_epochs=1,
    )
    _Recording(model=_Regressor(), args=args, train_dataset=_examples()).train()
    assert [window for window, _ in seen] == [3, 3, 3, 1]
    assert [int(count) for _, count in seen] == [6, 6, 6, 2]


def test_reference_style_training_step_copy_matches_the_built_in_step(tmp_path: Path) -> None:
    """An override written as the reference's training_step divides an unscaled loss by
    ``current_gradient_accumulation_steps``: on the lone last window too, it must train
    the same weights as the built-in step."""

    class _ReferenceStyle(Trainer):
        def training_step(
            self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
        ) -> torch.Tensor:
            model.train()
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
            scaled = (
                self.model_accepts_loss_kwargs and num_items_in_batch is not None
            ) or self.compute_loss_func is not None
            if not scaled:
                loss = loss / self.current_gradient_accumulation_steps
            self.accelerator.backward(loss)
            return loss.detach()

    def trained_weights(trainer_class: type[Trainer], folder: str) -> torch.Tensor:
        args = _args(
            tmp_path / folder,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=3,
            max_steps=-1,
            num_train_epochs=1,
            optim="sgd",
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
        )
        trainer = trainer_class(model=_Regressor(), args=args, train_dataset=_examples())
        trainer.train()
        return trainer.model.linear.weight.detach().clone()

    expected = trained_weights(Trainer, "built_in")
    torch.testing.assert_close(trained_weights(_ReferenceStyle, "copied"), expected)


def test_an_empty_stream_is_refused_on_the_first_pass(tmp_path: Path) -> None:
    class _Empty(IterableDataset):
        def __iter__(self) -> Any:
            return iter(())

    trainer = Trainer(model=_Regressor(), args=_args(tmp_path), train_dataset=_Empty())
    with pytest.raises(ValueError, match=r"yielded no batch at all.*_Empty"):
        trainer.train()


def test_a_collator_returning_a_list_gets_a_clear_error(tmp_path: Path) -> None:
    def list_collator(examples: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        return [
            torch.stack([example["x"] for example in examples]),
            torch.stack([example["labels"] for example in examples]),
        ]

    trainer = Trainer(
        model=_Regressor(),
        args=_args(tmp_path),
        train_dataset=_examples(),
        data_collator=list_collator,
    )
    with pytest.raises(TypeError, match=r"batch is a list of 2 items.*data_collator") as caught:
        trainer.train()
    assert "Linear(" not in str(caught.value)  # not the model's repr


# ------------------------------------------------------------------- at evaluation
# transformers 5 hands each evaluation batch's own labelled-item count to the same code.
def test_compute_loss_func_gets_each_batch_count_at_evaluation(tmp_path: Path) -> None:
    counts: list[Any] = []

    def summed_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> Any:
        counts.append(num_items_in_batch)
        return ((outputs["logits"] - labels) ** 2).sum() / num_items_in_batch

    model = _Regressor()
    trainer = Trainer(
        model=model,
        args=_args(tmp_path, per_device_eval_batch_size=3),
        compute_loss_func=summed_loss,
    )
    loss = trainer.evaluate(_examples())["eval_loss"]  # batches of 3, 3 and 2
    assert [int(count) for count in counts] == [3, 3, 2]
    with torch.no_grad():
        per_batch = [
            ((model.linear(batch["x"]).squeeze(-1) - batch["labels"]) ** 2).mean().item()
            for batch in (_stacked(_examples()[i : i + 3]) for i in (0, 3, 6))
        ]
    # Each batch's loss is its mean; the evaluation averages them over the samples.
    assert loss == pytest.approx((3 * per_batch[0] + 3 * per_batch[1] + 2 * per_batch[2]) / 8)


class _CountRecording(Trainer):
    """Records the ``num_items_in_batch`` each ``compute_loss`` call is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts_given: list[Any] = []

    def compute_loss(
        self, model: nn.Module, inputs: Any, return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:  # fmt: skip
        self.counts_given.append(num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def test_compute_loss_override_and_counting_model_get_the_count_at_evaluation(
    tmp_path: Path,
) -> None:
    model = _CountReadingRegressor()
    trainer = _CountRecording(model=model, args=_args(tmp_path, per_device_eval_batch_size=4))
    trainer.evaluate(_examples(6))
    assert [int(count) for count in trainer.counts_given] == [4, 2]
    assert [int(count) for count in model.counts_seen] == [4, 2]


def test_a_plain_model_is_evaluated_without_a_count(tmp_path: Path) -> None:
    trainer = _CountRecording(model=_Regressor(), args=_args(tmp_path))
    trainer.evaluate(_examples(4))
    assert trainer.counts_given == [None]  # as under transformers: no **kwargs in forward


def _stacked(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
