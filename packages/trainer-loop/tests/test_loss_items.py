"""Counting the items a loss averages over, and which models take that count."""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

import torch
from torch import nn

from trainer_loop._inputs import count_loss_items, is_causal_lm, model_accepts_loss_kwargs

LABELS = torch.tensor([[5, 6, 7, -100], [8, -100, -100, -100]])


def test_token_labels_count_the_positions_that_are_not_ignored() -> None:
    assert int(count_loss_items({"labels": LABELS}, "labels")) == 4  # type: ignore[arg-type]


def test_shifted_counting_skips_each_rows_first_label_as_a_causal_lm_does() -> None:
    counted = count_loss_items({"labels": LABELS}, "labels", shifted=True)
    assert int(counted) == 2  # type: ignore[arg-type]  # 6 and 7; row 2 scores nothing


def test_float_labels_count_rows_and_missing_labels_count_nothing() -> None:
    assert int(count_loss_items({"y": torch.zeros(3, 2)}, "y")) == 3  # type: ignore[arg-type]
    assert count_loss_items({"x": torch.zeros(3)}, "labels") is None
    assert count_loss_items({"labels": LABELS}, None) is None


class LossKwargs(TypedDict, total=False):
    num_items_in_batch: torch.Tensor


class OtherKwargs(TypedDict, total=False):
    output_attentions: bool


class TypedKwargsModel(nn.Module):
    """Types the count the way every transformers 5 model does, but computes a plain mean
    loss without it (as BERT's classifiers do)."""

    def forward(self, x: torch.Tensor, **kwargs: Unpack[LossKwargs]) -> Any:
        return x.mean()


class LossFunctionModel(nn.Module):
    """Passes its keyword arguments on to its loss function, as GPT-2 and Llama do."""

    def loss_function(self, x: torch.Tensor, num_items_in_batch: Any = None) -> Any:
        return x.sum() / num_items_in_batch

    def forward(self, x: torch.Tensor, **kwargs: Any) -> Any:
        return self.loss_function(x, **kwargs)


class OtherTypedKwargsModel(nn.Module):
    def forward(self, x: torch.Tensor, **kwargs: Unpack[OtherKwargs]) -> Any:
        return x


class BareKwargsModel(nn.Module):
    def forward(self, x: torch.Tensor, **kwargs: Any) -> Any:
        return x


class NamedParameterModel(nn.Module):
    def forward(self, x: torch.Tensor, num_items_in_batch: Any = None) -> Any:
        return x


class DeclinesModel(TypedKwargsModel):
    accepts_loss_kwargs = False


def test_models_that_promise_to_use_the_count_are_given_it() -> None:
    assert model_accepts_loss_kwargs(LossFunctionModel())
    assert model_accepts_loss_kwargs(NamedParameterModel())


def test_models_that_do_not_promise_it_are_not() -> None:
    assert not model_accepts_loss_kwargs(BareKwargsModel())  # might ignore it
    assert not model_accepts_loss_kwargs(TypedKwargsModel())  # typed, but ignores it
    assert not model_accepts_loss_kwargs(OtherTypedKwargsModel())
    assert not model_accepts_loss_kwargs(DeclinesModel())


class TinyForCausalLM(nn.Module):
    pass


def test_causal_lms_are_known_by_their_class_name() -> None:
    assert is_causal_lm(TinyForCausalLM())
    assert not is_causal_lm(nn.Linear(2, 2))


def test_a_collators_shift_labels_are_counted_as_given() -> None:
    shift = torch.tensor([[6, 7, -100], [-100, -100, -100]])
    inputs = {"labels": LABELS, "shift_labels": shift}
    assert int(count_loss_items(inputs, "labels", shifted=True)) == 2  # type: ignore[arg-type]


class _Config:
    is_encoder_decoder = True


class TinyForCausalLMWithEncoder(nn.Module):
    config = _Config()


class LossTypedModel(nn.Module):
    loss_type = "ForCausalLM"


def test_the_loss_type_names_causal_lms_and_encoder_decoders_never_are() -> None:
    assert is_causal_lm(LossTypedModel())
    assert not is_causal_lm(TinyForCausalLMWithEncoder())
