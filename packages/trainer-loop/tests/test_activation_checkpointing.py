"""``gradient_checkpointing=True`` uses transformers 5's ``activation_checkpointing_*``
names, which do not warn, and still calls a model that only has the old names."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_dist import DDPOptions
from trainer_loop import Trainer

transformers = pytest.importorskip("transformers")


class _Tokens(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = (torch.arange(6) + index) % 16
        return {"input_ids": ids, "labels": ids}


def _args(tmp_path: Any, **overrides: Any) -> TrainingArguments:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_checkpointing=True,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    options.update(overrides)
    return TrainingArguments(**options)


def test_a_transformers_model_checkpoints_without_future_warnings(tmp_path) -> None:
    config = transformers.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    args = _args(tmp_path, gradient_checkpointing_kwargs={"use_reentrant": False})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the deprecated names warn with a FutureWarning
        Trainer(model=model, args=args, train_dataset=_Tokens()).train()
        assert model.is_activation_checkpointing
        # DDP leaves the unused-parameter search off for a checkpointing model.
        assert DDPOptions().wrapper_kwargs(model)["find_unused_parameters"] is False


def test_the_new_method_is_preferred_and_given_the_kwargs(tmp_path) -> None:
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(6, 1)
            self.calls: list[tuple[str, Any]] = []

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.linear(input_ids.float()).mean()

        def activation_checkpointing_enable(self, activation_checkpointing_kwargs=None) -> None:
            self.calls.append(("activation", activation_checkpointing_kwargs))

        def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
            self.calls.append(("gradient", gradient_checkpointing_kwargs))

    model = Both()
    args = _args(tmp_path, gradient_checkpointing_kwargs={"use_reentrant": False})
    Trainer(model=model, args=args, train_dataset=_Tokens()).train()
    assert model.calls == [("activation", {"use_reentrant": False})]


def test_transformers_5_argument_names_turn_it_on(tmp_path) -> None:
    config = transformers.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    args = _args(
        tmp_path,
        gradient_checkpointing=False,
        activation_checkpointing=True,
        activation_checkpointing_kwargs={"every_n_layers": 1, "use_reentrant": False},
    )
    Trainer(model=model, args=args, train_dataset=_Tokens()).train()
    assert model.is_activation_checkpointing


def _tiny_llama(layers: int = 2) -> Any:
    config = transformers.LlamaConfig(
        vocab_size=16,
        hidden_size=8,
        intermediate_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


def test_layer_choices_are_arguments_of_the_method_not_checkpoint_options(tmp_path) -> None:
    """transformers 5 reads every_n_layers and offload out of the dict (torch's checkpoint
    would refuse them) and hands the rest to torch.utils.checkpoint."""
    model = _tiny_llama()
    kwargs = {"use_reentrant": False, "every_n_layers": 2}
    args = _args(tmp_path, gradient_checkpointing_kwargs=kwargs)
    Trainer(model=model, args=args, train_dataset=_Tokens()).train()
    checkpointed = [layer.gradient_checkpointing for layer in model.model.layers]
    assert checkpointed == [True, False]

    offloaded = _tiny_llama()
    args = _args(tmp_path, gradient_checkpointing_kwargs={"offload": True})
    Trainer(model=offloaded, args=args, train_dataset=_Tokens()).train()
    assert offloaded.is_activation_checkpointing


def test_a_layer_choice_the_method_does_not_take_is_refused_by_name(tmp_path) -> None:
    class OldStyle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(6, 1)

        def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.linear(input_ids.float()).mean()

        def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
            pass

    args = _args(tmp_path, gradient_checkpointing_kwargs={"every_n_layers": 2})
    with pytest.raises(ValueError, match=r"'every_n_layers'.*gradient_checkpointing_enable"):
        Trainer(model=OldStyle(), args=args, train_dataset=_Tokens()).train()
