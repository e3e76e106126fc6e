"""XLA FSDP settings: fsdp / fsdp_config translated for XlaFullyShardedDataParallel, or refused.

All of this runs without torch_xla: it is the part of the XLA runtime decided from the
arguments and the model alone.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_dist import XlaFSDPSettings, parse_xla_fsdp
from trainer_dist._xla_settings import (
    WrapPolicy,
    check_fp32_parameters,
    check_grad_ckpt,
    check_wrapper_options,
    disable_cache_for_checkpointing,
    resolve_wrap_policy,
    translate_wrapper_options,
    wants_xla,
)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Net(nn.Module):
    _no_split_modules: ClassVar[list[str]] = ["Block"]

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.layers = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 3)


def test_xla_with_full_shard_gives_default_settings() -> None:
    settings = parse_xla_fsdp("full_shard", {"xla": True})
    assert settings == XlaFSDPSettings()
    assert settings.checkpoint_format == "sharded" and not settings.grad_ckpt


def test_trainingarguments_values_with_prefixed_keys_are_translated(tmp_path: Any) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        fsdp="full_shard auto_wrap",
        fsdp_config={
            "fsdp_xla": True,
            "fsdp_xla_fsdp_grad_ckpt": "true",
            "fsdp_transformer_layer_cls_to_wrap": "Block, Other",
            "xla_fsdp_settings": {
                "compute_dtype": "bfloat16",
                "buffer_dtype": "torch.float32",
                "flatten_parameters": True,
            },
        },
    )
    settings = parse_xla_fsdp(args.fsdp, args.fsdp_config)
    assert settings.layer_classes == ("Block", "Other")
    assert settings.grad_ckpt is True
    assert settings.wrapper_options == {
        "compute_dtype": torch.bfloat16,
        "buffer_dtype": torch.float32,
        "flatten_parameters": True,
    }
    # The arguments keep their JSON-friendly strings.
    assert args.fsdp_config["xla_fsdp_settings"]["compute_dtype"] == "bfloat16"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("bfloat16", torch.bfloat16),
        ("BF16", torch.bfloat16),
        ("torch.float16", torch.float16),
        ("half", torch.float16),
        ("fp32", torch.float32),
        (torch.bfloat16, torch.bfloat16),
    ],
)
def test_dtype_names_become_torch_dtypes(given: Any, expected: torch.dtype) -> None:
    assert translate_wrapper_options({"compute_dtype": given})["compute_dtype"] is expected
    assert translate_wrapper_options({"buffer_dtype": given})["buffer_dtype"] is expected


@pytest.mark.parametrize("bad", ["int8", "float64", torch.int32, ["bfloat16"], 16])
def test_a_dtype_xla_fsdp_cannot_use_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"compute_dtype'\].*'float32', 'bfloat16', 'float16'"):
        translate_wrapper_options({"compute_dtype": bad})


def test_other_wrapper_options_pass_through_untouched() -> None:
    given = {"reshard_after_forward": False, "shard_param_on_dim_0": True, "pin_layout": 1}
    options = translate_wrapper_options(given)
    assert options == given and options is not given


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("auto_wrap_policy", r"min_num_params'\] or .*transformer_layer_cls_to_wrap"),
        ("auto_wrapper_callable", r"xla_fsdp_grad_ckpt'\]=True"),
        ("module", r"passes the model"),
        ("sharding_groups", r"shards over all processes"),
        ("sharding_rank", r"shards over all processes"),
    ],
)
def test_options_the_runtime_sets_itself_are_refused(key: str, hint: str) -> None:
    with pytest.raises(ValueError, match=rf"sets '{key}'.*{hint}"):
        parse_xla_fsdp("full_shard", {"xla": True, "xla_fsdp_settings": {key: None}})


def test_shard_grad_op_keeps_parameters_gathered_after_forward() -> None:
    settings = parse_xla_fsdp(["shard_grad_op"], {"xla": True})
    assert settings.wrapper_options == {"reshard_after_forward": False}
    explicit = {"xla": True, "xla_fsdp_settings": {"reshard_after_forward": False}}
    assert parse_xla_fsdp("full_shard", explicit).wrapper_options == {
        "reshard_after_forward": False
    }


def test_shard_grad_op_with_reshard_after_forward_true_conflicts() -> None:
    config = {"xla": True, "xla_fsdp_settings": {"reshard_after_forward": True}}
    with pytest.raises(ValueError, match=r"shard_grad_op.*reshard_after_forward=True"):
        parse_xla_fsdp("shard_grad_op", config)


@pytest.mark.parametrize(
    ("fsdp", "message"),
    [
        ("hybrid_shard", r"'hybrid_shard' is not available.*no hybrid"),
        ("full_shard offload", r"'offload' is not available.*no CPU offload"),
        ("no_shard", r"'no_shard' is not available"),
        ("", r"fsdp is empty.*fsdp='full_shard'"),
        (None, r"fsdp is empty"),
        ("full shard", r"unknown option\(s\) \['full', 'shard'\]"),
    ],
)
def test_fsdp_words_xla_fsdp_lacks_are_refused(fsdp: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_xla_fsdp(fsdp, {"xla": True})


def test_fsdp_v2_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(NotImplementedError, match=r"xla_fsdp_v2.*Set xla_fsdp_v2=False"):
        parse_xla_fsdp("full_shard", {"xla": True, "xla_fsdp_v2": True})


def test_torch_fsdp_activation_checkpointing_points_to_the_xla_key() -> None:
    with pytest.raises(ValueError, match=r"set fsdp_config\['xla_fsdp_grad_ckpt'\]=True"):
        parse_xla_fsdp("full_shard", {"xla": True, "activation_checkpointing": True})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"xla": True, "min_num_params": 5, "transformer_layer_cls_to_wrap": ["B"]}, r"Keep one"),
        ({"xla": True, "xla_fsdp_settings": "bf16"}, r"must be a dict"),
        ({"xla": True, "xla_fsdp_grad_ckpt": "maybe"}, r"expected true or false"),
        ({"xla": True, "state_dict_type": "LOCAL"}, r"state_dict_type.*not supported"),
        ({"xla": True, "min_num_params": -3}, r"integer >= 0"),
    ],
)
def test_checks_shared_with_torch_fsdp_apply(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_xla_fsdp("full_shard", config)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "sharded"), ("SHARDED_STATE_DICT", "sharded"), ("full_state_dict", "full")],
)
def test_checkpoint_format_follows_state_dict_type(value: Any, expected: str) -> None:
    config = {"xla": True} if value is None else {"xla": True, "state_dict_type": value}
    assert parse_xla_fsdp("full_shard", config).checkpoint_format == expected


def test_torch_fsdp_only_keys_are_reported_as_ignored() -> None:
    config = {"xla": True, "fsdp_forward_prefetch": True, "use_orig_params": True}
    settings = parse_xla_fsdp("full_shard", config)
    assert settings.ignored_keys == ("forward_prefetch", "use_orig_params")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"xla": True}, True),
        ({"fsdp_xla": "true"}, True),
        ({"xla": False, "min_num_params": 0}, False),
        ({"xla": "false"}, False),
        ({}, False),
        (None, False),
    ],
)
def test_wants_xla(config: Any, expected: bool) -> None:
    assert wants_xla(config) is expected


def test_wrapper_options_unknown_to_the_installed_torch_xla_are_listed() -> None:
    accepted = ["reshard_after_forward", "compute_dtype", "auto_wrap_policy", "_debug_msg"]
    check_wrapper_options({"compute_dtype": torch.bfloat16}, accepted)
    with pytest.raises(ValueError, match=r"\['flatten'\].*accepts \['compute_dtype', 'resh"):
        check_wrapper_options({"flatten": True, "compute_dtype": torch.float32}, accepted)


# ------------------------------------------------------------------ wrap policy
def test_min_num_params_gives_a_size_policy() -> None:
    policy = resolve_wrap_policy(Net(), XlaFSDPSettings(min_num_params=20))
    assert policy == WrapPolicy(min_num_params=20)


def test_layer_classes_are_resolved_against_the_model() -> None:
    settings = XlaFSDPSettings(layer_classes=("Block",))
    assert resolve_wrap_policy(Net(), settings) == WrapPolicy(layer_classes=(Block,))


def test_layer_classes_default_to_no_split_modules() -> None:
    assert resolve_wrap_policy(Net(), XlaFSDPSettings()) == WrapPolicy(layer_classes=(Block,))


def test_without_classes_or_size_only_the_root_is_wrapped() -> None:
    assert resolve_wrap_policy(nn.Sequential(nn.Linear(2, 2)), XlaFSDPSettings()) is None


def test_two_classes_of_one_name_are_both_wrapped() -> None:
    other = type("Block", (nn.Module,), {})
    model = nn.Sequential(Block(), other())
    policy = resolve_wrap_policy(model, XlaFSDPSettings(layer_classes=("Block",)))
    assert policy is not None and set(policy.layer_classes) == {Block, other}


def test_an_unknown_layer_class_is_named_with_the_model_classes() -> None:
    settings = XlaFSDPSettings(layer_classes=("Block", "GPT2Block"))
    with pytest.raises(ValueError, match=r"\['GPT2Block'\].*Net has no module.*'Block', 'Emb"):
        resolve_wrap_policy(Net(), settings)


def test_grad_ckpt_needs_an_auto_wrap_policy() -> None:
    settings = XlaFSDPSettings(grad_ckpt=True)
    check_grad_ckpt(WrapPolicy(min_num_params=1), settings, Net())
    check_grad_ckpt(None, XlaFSDPSettings(), Net())
    with pytest.raises(ValueError, match=r"xla_fsdp_grad_ckpt'\]=True.*transformer_layer_cls"):
        check_grad_ckpt(None, settings, Net())


def test_parameters_other_than_fp32_are_refused() -> None:
    check_fp32_parameters(Net())
    model = Net()
    model.head.half()
    with pytest.raises(ValueError, match=r"2 parameter\(s\).*head.weight \(torch.float16\)"):
        check_fp32_parameters(model)


def test_grad_ckpt_turns_the_kv_cache_off(caplog: pytest.LogCaptureFixture) -> None:
    model = Net()
    model.config = SimpleNamespace(use_cache=True)  # type: ignore[assignment]  # a stand-in config
    with caplog.at_level(logging.WARNING):
        disable_cache_for_checkpointing(model)
    assert model.config.use_cache is False
    assert "use_cache=True is incompatible" in caplog.text
    disable_cache_for_checkpointing(Net())  # no config: nothing to do
