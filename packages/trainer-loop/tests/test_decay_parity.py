"""Weight-decay groups equal transformers' for the models users train, so that
``optimizer.pt`` files move between the two Trainers in both directions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import create_optimizer, get_decay_parameter_names

transformers = pytest.importorskip("transformers")


def _t5() -> nn.Module:
    config = transformers.T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4
    )
    return transformers.T5ForConditionalGeneration(config)


def _batch_norm_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.GroupNorm(2, 8),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )


def _llama() -> nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return transformers.LlamaForCausalLM(config)


def _gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        vocab_size=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def _bert() -> nn.Module:
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    return transformers.BertForSequenceClassification(config)


MODELS = [
    pytest.param(_t5, id="t5"),
    pytest.param(_batch_norm_cnn, id="batchnorm-cnn"),
    pytest.param(_llama, id="llama"),
    pytest.param(_gpt2, id="gpt2"),
    pytest.param(_bert, id="bert"),
]


def _reference_decay_names(model: nn.Module) -> list[str]:
    # The reference's method reads nothing from the Trainer instance.
    return transformers.Trainer.get_decay_parameter_names(None, model)


@pytest.mark.parametrize("build", MODELS)
def test_decay_names_and_groups_equal_the_references(
    build: Callable[[], nn.Module], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = build()
    reference = _reference_decay_names(model)
    assert sorted(get_decay_parameter_names(model)) == sorted(reference)

    args = TrainingArguments(output_dir=str(tmp_path), weight_decay=0.1)
    decay, no_decay = create_optimizer(model, args).param_groups
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    assert [id(p) for p in decay["params"]] == [id(p) for n, p in named if n in reference]
    assert [id(p) for p in no_decay["params"]] == [id(p) for n, p in named if n not in reference]


def test_t5_relative_attention_bias_and_batch_norm_weights_are_classified_as_upstream() -> None:
    t5_decay = get_decay_parameter_names(_t5())
    assert not any("relative_attention_bias" in name for name in t5_decay)
    assert "encoder.block.0.layer.0.SelfAttention.q.weight" in t5_decay
    assert get_decay_parameter_names(_batch_norm_cnn()) == [
        "0.weight",
        "1.weight",
        "3.weight",
        "6.weight",
    ]
