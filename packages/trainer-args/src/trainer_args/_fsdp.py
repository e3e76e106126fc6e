"""The ``fsdp``, ``fsdp_config``, ``debug`` and removed ``sharded_ddp`` arguments.

Option words arrive as one space-separated string on the command line
(``--fsdp "full_shard auto_wrap"``) or as a list in Python; both become a list of enum
members. ``fsdp_config`` becomes a dict whose keys carry no ``fsdp_`` prefix, with the
defaults the runtime relies on filled in.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

from trainer_args._enums import (
    FSDP_SHARDING_STRATEGIES,
    DebugOption,
    FSDPOption,
    ShardedDDPOption,
)
from trainer_args._fsdp_switches import fsdp_flag, merge_fsdp_switches
from trainer_args._json_args import load_mapping
from trainer_args._messages import coerce_enum, conflict, invalid, wrong_type

E = TypeVar("E", bound=Enum)

_SHARDED_DDP_TO_FSDP: dict[str, str] = {
    ShardedDDPOption.SIMPLE: FSDPOption.SHARD_GRAD_OP,
    ShardedDDPOption.ZERO_DP_2: FSDPOption.SHARD_GRAD_OP,
    ShardedDDPOption.ZERO_DP_3: FSDPOption.FULL_SHARD,
    ShardedDDPOption.OFFLOAD: FSDPOption.OFFLOAD,
    ShardedDDPOption.AUTO_WRAP: FSDPOption.AUTO_WRAP,
}
"""The FSDP word closest to each FairScale word: ZeRO-2-like sharding of optimizer state
and gradients is ``shard_grad_op``; sharding parameters too (ZeRO-3) is ``full_shard``."""

FSDP_CONFIG_DEFAULTS: dict[str, Any] = {
    "min_num_params": 0,
    "xla": False,
    "xla_fsdp_v2": False,
    "xla_fsdp_grad_ckpt": False,
}
"""Keys every normalised ``fsdp_config`` holds; the user's values take precedence."""


def split_words(name: str, value: Any) -> list[str]:
    """Split an option argument (``"a b"``, ``["a", "b c"]``, ``""``, ``None``) into words."""
    if value is None or value is False:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)):
        words: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise wrong_type(name, value, "a space-separated string or a list of strings")
            words.extend(item.split())
        return words
    raise wrong_type(name, value, "a space-separated string or a list of strings")


def parse_options(name: str, value: Any, enum_cls: type[E]) -> list[E]:
    """Turn an option argument into a list of ``enum_cls`` members, without duplicates."""
    members = [coerce_enum(name, word, enum_cls) for word in split_words(name, value)]
    return list(dict.fromkeys(members))


def reject_sharded_ddp(args: Any) -> None:
    """Raise if ``sharded_ddp`` is set: FairScale support is gone; say which fsdp to use."""
    options = parse_options("sharded_ddp", args.sharded_ddp, ShardedDDPOption)
    if options:
        replacement = " ".join(dict.fromkeys(_SHARDED_DDP_TO_FSDP[o] for o in options))
        raise ValueError(
            f"sharded_ddp={args.sharded_ddp!r} is no longer supported: sharded DDP through "
            f"FairScale was removed in favour of PyTorch FSDP. Use fsdp={replacement!r} "
            f'instead (on the command line: --fsdp "{replacement}") and drop sharded_ddp.'
        )
    args.sharded_ddp = []


def normalize_option_lists(args: Any) -> None:
    """Parse ``fsdp`` and ``debug`` into lists of :class:`FSDPOption` / :class:`DebugOption`.

    Runs after :func:`load_fsdp_config`: ``fsdp=True`` and the transformers 5 config keys
    (``reshard_after_forward``, ``cpu_offload``, ``auto_wrap_policy``) become words here.
    """
    args.fsdp, args.fsdp_config = merge_fsdp_switches(args.fsdp, args.fsdp_config)
    args.fsdp = parse_options("fsdp", args.fsdp, FSDPOption)
    args.debug = parse_options("debug", args.debug, DebugOption)


def load_fsdp_config(args: Any) -> None:
    """Load ``fsdp_config`` into a dict whose keys carry no leading ``fsdp_``.

    Raises:
        ValueError: the same key is given with and without the prefix, with two values.
    """
    raw = load_mapping("fsdp_config", args.fsdp_config, allow_path=True) or {}
    config: dict[str, Any] = {}
    for key, value in raw.items():
        short = key[len("fsdp_") :] if key.startswith("fsdp_") else key
        if short in config and config[short] != value:
            raise conflict(
                f"fsdp_config[{short!r}]",
                config[short],
                f"fsdp_config[{key!r}]",
                value,
                "Give the key once, with or without the 'fsdp_' prefix.",
            )
        config[short] = value
    args.fsdp_config = config


def complete_fsdp_config(args: Any) -> None:
    """Fill the default keys and make ``transformer_layer_cls_to_wrap`` a list.

    A whole-number float ``min_num_params`` (JSON's ``1e8``) becomes an ``int``.
    """
    config = {**FSDP_CONFIG_DEFAULTS, **args.fsdp_config}
    layer_cls = config.get("transformer_layer_cls_to_wrap")
    if isinstance(layer_cls, str):
        config["transformer_layer_cls_to_wrap"] = [
            name.strip() for name in layer_cls.split(",") if name.strip()
        ]
    min_params = config["min_num_params"]
    if isinstance(min_params, float) and min_params.is_integer():
        config["min_num_params"] = int(min_params)
    args.fsdp_config = config


def check_fsdp(args: Any) -> None:
    """Reject FSDP settings that cannot work together.

    Rules: at most one sharding strategy; ``offload`` needs a strategy to offload from;
    FSDP and DeepSpeed exclude each other. With ``fsdp`` on, ``fsdp_config``'s values are
    checked too (see :func:`check_fsdp_config`), here rather than when the Trainer starts
    its processes.
    """
    strategies = [option.value for option in args.fsdp if option in FSDP_SHARDING_STRATEGIES]
    words = " ".join(option.value for option in args.fsdp)
    if len(strategies) > 1:
        allowed = ", ".join(repr(s.value) for s in FSDPOption if s in FSDP_SHARDING_STRATEGIES)
        raise invalid(
            "fsdp",
            words,
            f"at most one sharding strategy among {allowed}",
            f"Keep one of {strategies}, e.g. fsdp='{strategies[0]} auto_wrap'.",
        )
    if FSDPOption.OFFLOAD in args.fsdp and not strategies:
        raise invalid(
            "fsdp",
            words,
            "'offload' together with a sharding strategy",
            "Use e.g. fsdp='full_shard offload' or fsdp='shard_grad_op offload'.",
        )
    if args.fsdp and args.deepspeed:
        raise conflict(
            "fsdp",
            words,
            "deepspeed",
            args.deepspeed,
            "FSDP and DeepSpeed both shard the model; choose one of them.",
        )
    min_params = args.fsdp_config.get("min_num_params", 0)
    if isinstance(min_params, bool) or not isinstance(min_params, int) or min_params < 0:
        raise invalid("fsdp_config['min_num_params']", min_params, "an integer >= 0")
    if args.fsdp:
        check_fsdp_config(args.fsdp_config, args.gradient_checkpointing)


FSDP_FLAG_KEYS = (
    "forward_prefetch",
    "limit_all_gathers",
    "activation_checkpointing",
    "sync_module_states",
    "use_orig_params",
    "cpu_ram_efficient_loading",
    "xla",
    "xla_fsdp_v2",
    "xla_fsdp_grad_ckpt",
)
_FSDP_CHOICES = {
    "backward_prefetch": ("backward_pre", "backward_post", "no_prefetch"),
    "state_dict_type": ("FULL_STATE_DICT", "SHARDED_STATE_DICT"),
}


def check_fsdp_config(config: dict[str, Any], gradient_checkpointing: Any) -> None:
    """Check the values of an ``fsdp_config`` that will be used (``fsdp`` is on).

    Raises:
        ValueError: a flag that is not a boolean, an unknown ``backward_prefetch`` or
            ``state_dict_type``, both auto-wrap policies, or FSDP's
            ``activation_checkpointing`` together with ``gradient_checkpointing``.
    """
    flags = {key: fsdp_flag(key, config[key]) for key in FSDP_FLAG_KEYS if key in config}
    for key, allowed in _FSDP_CHOICES.items():
        value = config.get(key)
        if value is not None and str(value).lower() not in [a.lower() for a in allowed]:
            raise invalid(f"fsdp_config[{key!r}]", value, f"one of {list(allowed)} (any case)")
    if config.get("min_num_params", 0) > 0 and config.get("transformer_layer_cls_to_wrap"):
        raise conflict(
            "fsdp_config['min_num_params']",
            config["min_num_params"],
            "fsdp_config['transformer_layer_cls_to_wrap']",
            config["transformer_layer_cls_to_wrap"],
            "They select two different auto-wrap policies; keep only one.",
        )
    if flags.get("activation_checkpointing") and gradient_checkpointing:
        raise conflict(
            "fsdp_config['activation_checkpointing']",
            config["activation_checkpointing"],
            "gradient_checkpointing",
            gradient_checkpointing,
            "Both recompute activations in backward; with FSDP keep fsdp_config's "
            "activation_checkpointing and set gradient_checkpointing=False.",
        )
