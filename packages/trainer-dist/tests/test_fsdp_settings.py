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
        ("full_shard", {"forward_prefetch": "maybe"}, r"expected true or false"),
        ("full_shard", {"cpu_ram_efficient_loading": "maybe"}, r"expected true or false"),
        ("full_shard", {"activation_checkpointing": 2}, r"expected true or false"),
        ("full_shard", {"min_num_params": 1.5}, r"integer >= 0"),
        ("full_shard", {"backward_prefetch": "eager"}, r"backward_prefetch.*not supported"),
        ("full_shard", {"state_dict_type": "LOCAL"}, r"state_dict_type.*not supported"),
        ("full_shard", {"min_num_params": -1}, r"integer >= 0"),
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


def test_the_unknown_class_message_names_the_models_layer_classes() -> None:
    class Plain(nn.Module):  # no _no_split_modules: the classes repeated in its lists
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([Block(), Block()])

    settings = parse_fsdp("full_shard", {"transformer_layer_cls_to_wrap": ["Nope"]})
    with pytest.raises(ValueError, match=r"repeated layers instead: \['Block'\]"):
        layers_to_wrap(Plain(), settings)
    with pytest.raises(ValueError, match=r"repeated layers instead: \['Block'\]"):
        layers_to_wrap(Net(), settings)


class TiedLM(nn.Module):
    """An embedding and an output projection sharing one weight, as in GPT-2 or Llama."""

    _no_split_modules = ("Block",)

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 4)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.lm_head = nn.Linear(4, 16, bias=False)
        self.lm_head.weight = self.embed.weight


def test_size_based_wrapping_keeps_tied_weights_in_the_root_unit() -> None:
    model = TiedLM()  # embed / lm_head hold 64 parameters each, one tensor between them
    layers = layers_to_wrap(model, parse_fsdp("full_shard", {"min_num_params": 20}))
    assert model.embed not in layers and model.lm_head not in layers
    assert layers == [model.blocks[0].linear, model.blocks[1].linear]


def test_a_module_holding_every_name_of_a_tie_may_become_a_unit() -> None:
    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = TiedLM()
            self.head = nn.Linear(4, 1)

    model = Outer()
    layers = layers_to_wrap(model, parse_fsdp("full_shard", {"min_num_params": 100}))
    assert layers == [model.lm]


def test_a_layer_class_that_splits_a_tie_is_refused_by_name() -> None:
    settings = parse_fsdp("full_shard", {"transformer_layer_cls_to_wrap": ["Embedding"]})
    with pytest.raises(ValueError, match=r"Embedding, whose module 'embed' holds a parameter tied"):
        layers_to_wrap(TiedLM(), settings)


@pytest.mark.parametrize(
    ("fsdp", "config", "expected"),
    [
        (True, {}, FSDPSettings(auto_wrap=True)),
        (True, {"reshard_after_forward": False}, FSDPSettings("shard_grad_op", auto_wrap=True)),
        (True, {"fsdp_cpu_offload": "true"}, FSDPSettings(offload=True, auto_wrap=True)),
        (True, {"auto_wrap_policy": "NO_WRAP", "version": 2}, FSDPSettings()),
        (
            True,
            {"auto_wrap_policy": "SIZE_BASED_WRAP", "version": "1"},
            FSDPSettings(auto_wrap=True, min_num_params=100_000_000),
        ),
        ("shard_grad_op", {"cpu_offload": True}, FSDPSettings("shard_grad_op", offload=True)),
    ],
)
def test_transformers_5_switches_are_read_like_the_words(
    fsdp: object, config: dict, expected: FSDPSettings
) -> None:
    assert parse_fsdp(fsdp, config) == expected


def test_unknown_keys_are_ignored_with_a_warning_naming_them(caplog) -> None:
    # An fsdp_config copied from an accelerate config: the reference ignores the keys
    # it does not read, and the fsdp words choose the strategy and the offload.
    config = {
        "fsdp_sharding_strategy": 1,
        "fsdp_offload_params": False,
        "fsdp_backward_prefetch_policy": "BACKWARD_PRE",
        "fsdp_transformer_layer_cls_to_wrap": "Block",
    }
    with caplog.at_level("WARNING", logger="trainer_dist"):
        settings = parse_fsdp("full_shard auto_wrap", config)
    assert settings == FSDPSettings(auto_wrap=True, layer_classes=("Block",))
    assert "['backward_prefetch_policy', 'offload_params', 'sharding_strategy']" in caplog.text
    assert "are ignored" in caplog.text


def test_xla_keys_without_xla_are_ignored_with_a_warning(caplog) -> None:
    with caplog.at_level("WARNING", logger="trainer_dist"):
        settings = parse_fsdp("full_shard", {"xla_fsdp_grad_ckpt": True, "xla_fsdp_v2": "true"})
    assert settings == FSDPSettings()
    assert "['xla_fsdp_v2', 'xla_fsdp_grad_ckpt'] but not xla=True" in caplog.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("yes", True),
        ("On", True),
        ("1", True),
        (1, True),
        ("no", False),
        ("OFF", False),
        (0, False),
    ],
)
def test_flags_take_the_boolean_spellings_accelerate_takes(value: object, expected: bool) -> None:
    config = {"forward_prefetch": value, "cpu_ram_efficient_loading": value}
    settings = parse_fsdp("full_shard", config)
    assert settings.forward_prefetch is expected
    assert settings.cpu_ram_efficient_loading is expected


def test_a_whole_float_min_num_params_is_an_int() -> None:
    assert parse_fsdp("full_shard auto_wrap", {"min_num_params": 1e8}).min_num_params == 100_000_000
