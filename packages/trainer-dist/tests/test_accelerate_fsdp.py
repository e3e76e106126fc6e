"""``accelerate launch`` with FSDP, read from the environment it gives each process."""

from __future__ import annotations

from typing import Any

import pytest

from trainer_dist._accelerate_fsdp import accelerate_fsdp_request
from trainer_dist._fsdp_settings import FSDPSettings, parse_fsdp

# What `accelerate launch --config_file` sets for the reference's example FSDP config
# (accelerate/utils/launch.py, prepare_multi_gpu_env), defaults included.
REFERENCE_EXAMPLE = {
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "1",
    "FSDP_SHARDING_STRATEGY": "1",
    "FSDP_RESHARD_AFTER_FORWARD": "true",
    "FSDP_OFFLOAD_PARAMS": "false",
    "FSDP_MIN_NUM_PARAMS": "100000000",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
    "FSDP_TRANSFORMER_CLS_TO_WRAP": "BertLayer",
    "FSDP_BACKWARD_PREFETCH": "BACKWARD_PRE",
    "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
    "FSDP_FORWARD_PREFETCH": "true",
    "FSDP_USE_ORIG_PARAMS": "true",
    "FSDP_CPU_RAM_EFFICIENT_LOADING": "false",
    "FSDP_SYNC_MODULE_STATES": "true",
    "FSDP_ACTIVATION_CHECKPOINTING": "false",
    "FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD": "false",
}


def settings(**changes: str) -> FSDPSettings:
    environ: dict[str, Any] = {**REFERENCE_EXAMPLE, **changes}
    request = accelerate_fsdp_request({k: v for k, v in environ.items() if v is not None})
    assert request is not None
    return parse_fsdp(*request)


def test_no_fsdp_without_the_launcher_flag() -> None:
    assert accelerate_fsdp_request({}) is None
    assert accelerate_fsdp_request({**REFERENCE_EXAMPLE, "ACCELERATE_USE_FSDP": "false"}) is None


def test_the_reference_example_config_becomes_the_same_settings_as_the_arguments() -> None:
    from_launcher = settings()
    from_arguments = parse_fsdp(
        "full_shard auto_wrap",
        {
            "transformer_layer_cls_to_wrap": ["BertLayer"],
            "backward_prefetch": "backward_pre",
            "forward_prefetch": True,
            "state_dict_type": "FULL_STATE_DICT",
            "sync_module_states": True,
            "use_orig_params": True,
        },
    )
    assert from_launcher == from_arguments
    assert from_launcher.layer_classes == ("BertLayer",)


@pytest.mark.parametrize(
    ("value", "strategy"),
    [("1", "full_shard"), ("2", "shard_grad_op"), ("NO_SHARD", "no_shard"), ("4", "hybrid_shard"),
     ("hybrid_shard_zero2", "hybrid_shard_zero2")],
)  # fmt: skip
def test_sharding_strategy_by_number_or_name(value: str, strategy: str) -> None:
    assert settings(FSDP_SHARDING_STRATEGY=value).strategy == strategy


def test_fsdp_version_2_shards_by_reshard_after_forward() -> None:
    assert settings(FSDP_VERSION="2", FSDP_SHARDING_STRATEGY="3").strategy == "full_shard"
    changed = settings(FSDP_VERSION="2", FSDP_RESHARD_AFTER_FORWARD="false")
    assert changed.strategy == "shard_grad_op"


def test_size_based_wrapping_offload_and_the_remaining_flags() -> None:
    chosen = settings(
        FSDP_AUTO_WRAP_POLICY="SIZE_BASED_WRAP",
        FSDP_MIN_NUM_PARAMS="2000",
        FSDP_OFFLOAD_PARAMS="true",
        FSDP_BACKWARD_PREFETCH="NO_PREFETCH",
        FSDP_STATE_DICT_TYPE="SHARDED_STATE_DICT",
        FSDP_ACTIVATION_CHECKPOINTING="true",
        FSDP_SYNC_MODULE_STATES="false",
    )
    assert (chosen.offload, chosen.auto_wrap, chosen.min_num_params) == (True, True, 2000)
    assert chosen.layer_classes is None
    assert chosen.backward_prefetch == "no_prefetch"
    assert chosen.state_dict_type == "SHARDED_STATE_DICT"
    assert chosen.activation_checkpointing is True
    assert chosen.sync_module_states is False


def test_no_wrap_policy_wraps_only_the_root() -> None:
    chosen = settings(FSDP_AUTO_WRAP_POLICY="NO_WRAP")
    assert not chosen.wraps_layers


def test_transformer_wrapping_without_classes_falls_back_to_no_split_modules() -> None:
    assert settings(FSDP_TRANSFORMER_CLS_TO_WRAP="").layer_classes is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FSDP_SHARDING_STRATEGY", "9", r"FSDP_SHARDING_STRATEGY='9'.*fsdp_sharding_strategy"),
        ("FSDP_STATE_DICT_TYPE", "LOCAL_STATE_DICT", r"LOCAL_STATE_DICT.*FULL_STATE_DICT"),
        ("FSDP_AUTO_WRAP_POLICY", "LAYER_WRAP", r"FSDP_AUTO_WRAP_POLICY='LAYER_WRAP'"),
        ("FSDP_VERSION", "3", r"FSDP_VERSION='3'.*1 or 2"),
        ("FSDP_BACKWARD_PREFETCH", "EARLY", r"FSDP_BACKWARD_PREFETCH='EARLY'"),
    ],
)
def test_values_accelerate_would_not_give_are_named(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**{variable: value})


def test_a_garbled_min_num_params_is_named() -> None:
    with pytest.raises(ValueError, match=r"FSDP_MIN_NUM_PARAMS='lots'"):
        settings(FSDP_AUTO_WRAP_POLICY="SIZE_BASED_WRAP", FSDP_MIN_NUM_PARAMS="lots")


def test_fsdp_version_2_defaults_to_sharded_state_dicts_as_accelerate_does() -> None:
    unset = {"FSDP_STATE_DICT_TYPE": None}
    assert settings(FSDP_VERSION="2", **unset).state_dict_type == "SHARDED_STATE_DICT"
    assert settings(FSDP_VERSION="1", **unset).state_dict_type == "FULL_STATE_DICT"
    chosen = settings(FSDP_VERSION="2", FSDP_STATE_DICT_TYPE="FULL_STATE_DICT")
    assert chosen.state_dict_type == "FULL_STATE_DICT"


@pytest.mark.parametrize("minimum", ["0", None])
def test_size_based_wrapping_without_a_minimum_uses_torchs_default(minimum: str | None) -> None:
    chosen = settings(FSDP_AUTO_WRAP_POLICY="SIZE_BASED_WRAP", FSDP_MIN_NUM_PARAMS=minimum)
    assert (chosen.auto_wrap, chosen.min_num_params) == (True, 100_000_000)
    assert chosen.layer_classes is None


def test_options_not_honoured_here_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="trainer_dist._accelerate_fsdp"):
        settings(FSDP_IGNORED_MODULES="router", FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD="true")
    warned = caplog.text
    assert "FSDP_IGNORED_MODULES=router" in warned and "fsdp_ignored_modules" in warned
    assert "FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD=true" in warned
    caplog.clear()
    with caplog.at_level("WARNING", logger="trainer_dist._accelerate_fsdp"):
        settings()  # the reference example sets the offload variable to false
    assert caplog.text == ""
