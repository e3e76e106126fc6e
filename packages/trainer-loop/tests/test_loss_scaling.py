"""Gradient accumulation scales each micro-batch's loss exactly once, wherever it came from.

Every test trains the same examples as one batch per step and as an accumulation window
of smaller micro-batches (SGD, constant learning rate, no clipping): the weights after
training must be the same, which fails if a loss is normalised twice or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_testing.models import VectorRegressionModel

_Regressor = VectorRegressionModel  # a plain module: no **kwargs in forward


class _RegressorWithKwargs(_Regressor):
    """Takes ``**kwargs`` in ``forward``: transformers hands such models the count."""

    def forward(  # type: ignore[override]  # adds **kwargs
        self, x: torch.Tensor, labels: torch.Tensor | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        return super().forward(x, labels)


def _regression_data() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    xs = torch.randn(16, 4, generator=generator)
    return [{"x": x, "labels": x.sum()} for x in xs]


def _sum_over_items(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> Any:
    """A loss normalised by the window's item count, as transformers' docs show."""
    total = ((outputs["logits"] - labels) ** 2).sum()
    return total / (num_items_in_batch if num_items_in_batch is not None else labels.numel())


def _args(tmp_path: Path, batch: int, accumulation: int, **extra: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        max_steps=2,
        optim="sgd",
        learning_rate=0.05,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        **extra,
    )


def _weights_after(
    tmp_path: Path, batch: int, accumulation: int, trainer_cls: type = Trainer, **kw: Any
) -> torch.Tensor:
    model = kw.pop("model_cls", _Regressor)()
    data = kw.pop("data", None) or _regression_data()
    args = _args(tmp_path / f"{batch}x{accumulation}", batch, accumulation, **kw.pop("args", {}))
    trainer = trainer_cls(model=model, args=args, train_dataset=data, **kw)
    trainer.train()
    return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])


def _assert_accumulation_invariant(tmp_path: Path, **kw: Any) -> None:
    whole = _weights_after(tmp_path, 8, 1, **dict(kw))
    accumulated = _weights_after(tmp_path, 4, 2, **dict(kw))
    torch.testing.assert_close(accumulated, whole, rtol=1e-5, atol=1e-6)


def test_compute_loss_func_normalised_by_the_count_is_not_scaled_again(tmp_path) -> None:
    _assert_accumulation_invariant(tmp_path, compute_loss_func=_sum_over_items)


class _CountingLoss(Trainer):
    """An override taking ``num_items_in_batch`` and dividing by it when given."""

    seen: list[Any]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        type(self).seen.append(num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = _sum_over_items(outputs, labels, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss


class _MeanLoss(Trainer):
    """An override that accepts ``num_items_in_batch`` but returns a per-batch mean."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = ((outputs["logits"] - labels) ** 2).mean()
        return (loss, outputs) if return_outputs else loss


def test_an_override_on_a_plain_module_gets_no_count_and_is_weighted_as_a_mean(
    tmp_path,
) -> None:
    _CountingLoss.seen = []
    _assert_accumulation_invariant(tmp_path, trainer_cls=_CountingLoss)
    assert _CountingLoss.seen == [None] * 6  # as transformers: the module takes no count
    _assert_accumulation_invariant(tmp_path / "mean", trainer_cls=_MeanLoss)


def test_an_override_on_a_model_taking_kwargs_gets_the_count_and_is_not_scaled_again(
    tmp_path,
) -> None:
    _CountingLoss.seen = []
    _assert_accumulation_invariant(
        tmp_path, trainer_cls=_CountingLoss, model_cls=_RegressorWithKwargs
    )
    # Both runs count, as transformers does: the one-batch run's two steps and the 4x2
    # run's micro-batches each got their window's 8 rows.
    assert [int(n) for n in _CountingLoss.seen] == [8] * 6


class _DeclaredMean(_MeanLoss):
    loss_is_scaled_for_ga = False  # transformers 5's switch, honoured


def test_loss_is_scaled_for_ga_false_weights_the_loss_as_a_mean(tmp_path) -> None:
    _assert_accumulation_invariant(
        tmp_path, trainer_cls=_DeclaredMean, model_cls=_RegressorWithKwargs
    )


def _tiny_llama() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


def _token_data() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (16, 8), generator=generator)
    ids[::3, 5:] = -100  # rows with different numbers of labelled tokens
    return [{"input_ids": row.clamp(min=0), "labels": row} for row in ids]


@pytest.mark.slow
def test_label_smoothing_with_accumulation_on_a_model_that_takes_the_count(tmp_path) -> None:
    """The smoothed loss replaces the model's own, so the count the model would have
    divided by is not applied: each micro-batch's mean is weighted by its tokens."""
    smoothing = {"label_smoothing_factor": 0.1}
    whole = _weights_after(
        tmp_path, 8, 1, model_cls=_tiny_llama, data=_token_data(), args=smoothing
    )
    accumulated = _weights_after(
        tmp_path, 4, 2, model_cls=_tiny_llama, data=_token_data(), args=smoothing
    )
    torch.testing.assert_close(accumulated, whole, rtol=1e-4, atol=1e-5)
