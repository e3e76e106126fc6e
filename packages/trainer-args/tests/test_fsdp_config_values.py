"""fsdp_config values: checked when TrainingArguments is built (with fsdp on), as
transformers checks them there, not when the Trainer starts its processes."""

from __future__ import annotations

from typing import Any

import pytest

from trainer_args import TrainingArguments


def _build(**kwargs: Any) -> TrainingArguments:
    return TrainingArguments("out", report_to="none", **kwargs)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"forward_prefetch": "maybe"},
            r"fsdp_config\['forward_prefetch'\]='maybe'.*true or false",
        ),
        ({"activation_checkpointing": 2}, r"fsdp_config\['activation_checkpointing'\]=2"),
        ({"cpu_ram_efficient_loading": "maybe"}, r"fsdp_config\['cpu_ram_efficient_loading'\]"),
        ({"fsdp_sync_module_states": []}, r"fsdp_config\['sync_module_states'\]=\[\]"),
        ({"backward_prefetch": "eager"}, r"'backward_pre', 'backward_post', 'no_prefetch'"),
        ({"state_dict_type": "LOCAL_STATE_DICT"}, r"'FULL_STATE_DICT', 'SHARDED_STATE_DICT'"),
        ({"min_num_params": 1.5}, r"fsdp_config\['min_num_params'\]=1.5"),
    ],
)
def test_bad_values_fail_at_construction(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(fsdp="full_shard auto_wrap", fsdp_config=config)


def test_accepted_spellings_are_kept_as_given() -> None:
    config = {
        "forward_prefetch": "yes",
        "use_orig_params": 0,
        "activation_checkpointing": "True",
        "backward_prefetch": "BACKWARD_POST",
        "state_dict_type": "sharded_state_dict",
    }
    args = _build(fsdp="full_shard auto_wrap", fsdp_config=config)
    assert {key: args.fsdp_config[key] for key in config} == config


def test_without_fsdp_the_config_values_are_not_checked() -> None:
    # Without fsdp the config describes nothing to run (transformers does not read it).
    config = {
        "backward_prefetch": "eager",
        "min_num_params": 5,
        "transformer_layer_cls_to_wrap": "B",
    }
    args = _build(fsdp_config=config)
    assert args.fsdp == []
    assert args.fsdp_config["backward_prefetch"] == "eager"
    assert args.fsdp_config["transformer_layer_cls_to_wrap"] == ["B"]


def test_a_whole_float_min_num_params_becomes_an_int() -> None:
    args = _build(fsdp="full_shard auto_wrap", fsdp_config='{"min_num_params": 1e8}')
    assert args.fsdp_config["min_num_params"] == 100_000_000
    assert type(args.fsdp_config["min_num_params"]) is int


def test_fsdp_activation_checkpointing_excludes_gradient_checkpointing() -> None:
    with pytest.raises(ValueError, match=r"activation_checkpointing'\]=True and gradient_"):
        _build(
            fsdp="full_shard auto_wrap",
            gradient_checkpointing=True,
            fsdp_config={"activation_checkpointing": True},
        )
    with pytest.raises(ValueError, match=r"gradient_checkpointing=True"):
        _build(
            fsdp=True,
            activation_checkpointing=True,
            fsdp_config='{"activation_checkpointing": "1"}',
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fsdp": "full_shard auto_wrap", "fsdp_config": {"activation_checkpointing": False}},
        {"fsdp": "", "fsdp_config": {"activation_checkpointing": True}},
    ],
)
def test_gradient_checkpointing_alone_is_fine(kwargs: dict[str, Any]) -> None:
    assert _build(gradient_checkpointing=True, **kwargs).gradient_checkpointing
