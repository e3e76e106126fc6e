"""fsdp words and fsdp_config keys: parsed into settings, or refused with a clear message."""

from __future__ import annotations

import pytest
from torch import nn

from trainer_args import TrainingArguments
from trainer_dist import FSDPSettings, parse_fsdp
from trainer_dist._fsdp import layers_to_wrap


def test_defaults_are_full_shard_with_full_state_dicts() -> None:
    settings = parse_fsdp("auto_wrap", {})
    assert settings.strategy == "full_shard" and settings.auto_wrap
    assert settings.state_dict_type == "FULL_STATE_DICT"
    assert settings.sync_module_states and settings.use_orig_params


def test_trainingarguments_values_and_prefixed_keys_are_read(tmp_path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        fsdp="shard_grad_op offload",
        fsdp_config={
            "fsdp_backward_prefetch": "BACKWARD_POST",
            "forward_prefetch": "true",
            "activation_checkpointing": True,
            "state_dict_type": "sharded_state_dict",
            "transformer_layer_cls_to_wrap": "Block, Other",
        },
    )
    settings = parse_fsdp(args.fsdp, args.fsdp_config)
    assert settings == FSDPSettings(
        strategy="shard_grad_op",
        offload=True,
        backward_prefetch="backward_post",
        forward_prefetch=True,
        activation_checkpointing=True,
        state_dict_type="SHARDED_STATE_DICT",
        layer_classes=("Block", "Other"),
    )


@pytest.mark.parametrize(
    ("fsdp", "config", "message"),
    [
        ("full_shard no_shard", {}, r"2 sharding strategies"),
        ("full_shard zero3", {}, r"unknown option\(s\) \['zero3'\]"),
        ("full_shard", {"wrap_everything": True}, r"unknown key\(s\) \['wrap_everything'\]"),
        ("full_shard", {"forward_prefetch": "yes"}, r"must be true or false"),
        ("full_shard", {"backward_prefetch": "eager"}, r"backward_prefetch.*not supported"),
        ("full_shard", {"state_dict_type": "LOCAL"}, r"state_dict_type.*not supported"),
        ("full_shard", {"min_num_params": -1}, r"integer >= 0"),
        ("full_shard", {"xla_fsdp_grad_ckpt": True}, r"not xla=True"),
        ("full_shard", {"xla": True, "xla_fsdp_settings": [1]}, r"must be a dict"),
        (
            "full_shard",
            {"min_num_params": 5, "transformer_layer_cls_to_wrap": ["Block"]},
            r"Keep one of them",
        ),
    ],
)
def test_bad_settings_are_refused(fsdp: str, config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fsdp(fsdp, config)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)


class Net(nn.Module):
    _no_split_modules = ("Block",)

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 1)


def test_layers_come_from_no_split_modules_or_the_config() -> None:
    net = Net()
    assert layers_to_wrap(net, parse_fsdp("full_shard", {})) == []
    assert layers_to_wrap(net, parse_fsdp("full_shard auto_wrap", {})) == list(net.blocks)
    by_name = parse_fsdp("full_shard", {"transformer_layer_cls_to_wrap": ["Linear"]})
    assert len(layers_to_wrap(net, by_name)) == 3


def test_size_based_wrapping_wraps_modules_past_the_threshold() -> None:
    net = Net()  # each Block holds 20 parameters, the head 5
    assert layers_to_wrap(net, parse_fsdp("full_shard", {"min_num_params": 20})) == [
        net.blocks[0].linear,
        net.blocks[1].linear,
    ]
    assert layers_to_wrap(net, parse_fsdp("full_shard", {"min_num_params": 40})) == [net.blocks]


def test_an_unknown_layer_class_is_reported() -> None:
    settings = parse_fsdp("full_shard", {"transformer_layer_cls_to_wrap": ["DecoderLayer"]})
    with pytest.raises(ValueError, match=r"\['DecoderLayer'\], which Net does not contain"):
        layers_to_wrap(Net(), settings)
