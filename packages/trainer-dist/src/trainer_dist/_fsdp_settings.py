"""The ``fsdp`` option words and ``fsdp_config`` keys, checked and turned into settings.

Validation happens here, before any process group starts, so that a wrong key or value
fails fast on every process with one message instead of hanging a collective.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainer_args import FSDP_FLAG_KEYS, FSDP_SWITCH_KEYS, fsdp_flag, merge_fsdp_switches
from trainer_args import fsdp_option_words as option_words

STRATEGIES = ("full_shard", "shard_grad_op", "hybrid_shard", "hybrid_shard_zero2", "no_shard")
_MODIFIERS = ("offload", "auto_wrap")
_PREFETCH = ("backward_pre", "backward_post", "no_prefetch")
_STATE_DICT_TYPES = ("FULL_STATE_DICT", "SHARDED_STATE_DICT")
logger = logging.getLogger(__name__)

KNOWN_KEYS = frozenset(
    {
        "min_num_params",
        "transformer_layer_cls_to_wrap",
        "backward_prefetch",
        "state_dict_type",
        "xla_fsdp_settings",
        *FSDP_FLAG_KEYS,
        *FSDP_SWITCH_KEYS,
    }
)
"""``fsdp_config`` keys the runtime understands (the reference's list, without the
optional ``fsdp_`` prefix that trainer-args strips)."""


@dataclass(frozen=True)
class FSDPSettings:
    """What FSDP2 (``torch.distributed.fsdp.fully_shard``) is asked to do.

    Attributes:
        strategy: one of :data:`STRATEGIES`; ``full_shard`` when only modifiers are given.
        offload: keep parameters, gradients and optimizer state on the CPU (GPU runs).
        auto_wrap: shard the model's layers as separate units (see ``layer_classes`` and
            ``min_num_params``), not only the whole model.
        min_num_params: size-based wrapping: a submodule holding at least this many
            parameters not already wrapped becomes a unit (0: off).
        layer_classes: class names to wrap; ``None`` means the model's
            ``_no_split_modules``.
        backward_prefetch: ``backward_pre`` (FSDP2's implicit prefetch, the default),
            ``backward_post`` (same as ``backward_pre`` with FSDP2), ``no_prefetch``.
        forward_prefetch: prefetch the next layer's parameters during forward.
        limit_all_gathers: accepted for compatibility; FSDP2 always bounds its
            all-gathers.
        activation_checkpointing: recompute each wrapped layer's activations in backward.
        state_dict_type: ``FULL_STATE_DICT`` or ``SHARDED_STATE_DICT`` for checkpoints.
        sync_module_states: broadcast rank 0's weights to every process before sharding.
        use_orig_params: accepted for compatibility; FSDP2 always keeps the original
            parameters (as ``DTensor`` shards).
        cpu_ram_efficient_loading: accepted for compatibility (checked, no effect yet).
    """

    strategy: str = "full_shard"
    offload: bool = False
    auto_wrap: bool = False
    min_num_params: int = 0
    layer_classes: tuple[str, ...] | None = None
    backward_prefetch: str = "backward_pre"
    forward_prefetch: bool = False
    limit_all_gathers: bool = True
    activation_checkpointing: bool = False
    state_dict_type: str = "FULL_STATE_DICT"
    sync_module_states: bool = True
    use_orig_params: bool = True
    cpu_ram_efficient_loading: bool = False

    @property
    def wraps_layers(self) -> bool:
        """Whether submodules become separate FSDP units."""
        return self.auto_wrap or self.min_num_params > 0 or bool(self.layer_classes)


def unprefixed(fsdp_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """``fsdp_config`` with the optional ``fsdp_`` prefix taken off its keys."""
    return {
        (key[len("fsdp_") :] if key.startswith("fsdp_") else key): value
        for key, value in (fsdp_config or {}).items()
    }


def _strategy(words: list[str]) -> str:
    unknown = [w for w in words if w not in STRATEGIES and w not in _MODIFIERS]
    if unknown:
        raise ValueError(
            f"fsdp={' '.join(words)!r} contains unknown option(s) {unknown}; allowed are "
            f"{list(STRATEGIES)} (one) plus {list(_MODIFIERS)}."
        )
    chosen = [w for w in words if w in STRATEGIES]
    if len(chosen) > 1:
        raise ValueError(
            f"fsdp={' '.join(words)!r} names {len(chosen)} sharding strategies {chosen}; "
            f"keep one of them (e.g. fsdp='{chosen[0]} auto_wrap')."
        )
    return chosen[0] if chosen else "full_shard"


def _choice(config: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = config.get(key)
    if value is None:
        return default
    text = str(value)
    for candidate in allowed:
        if text.lower() == candidate.lower():
            return candidate
    raise ValueError(f"fsdp_config[{key!r}]={value!r} is not supported; use one of {allowed}.")


def _flag(config: dict[str, Any], key: str, default: bool) -> bool:
    return fsdp_flag(key, config.get(key, default))


def _layer_classes(config: dict[str, Any]) -> tuple[str, ...] | None:
    value = config.get("transformer_layer_cls_to_wrap")
    if value is None:
        return None
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    return tuple(str(name) for name in value)


def _check_xla_keys(config: dict[str, Any]) -> None:
    """The XLA keys must be well-typed; set without ``xla=True`` they do nothing (a
    warning says so, as the reference ignores them there)."""
    for key in ("xla", "xla_fsdp_v2", "xla_fsdp_grad_ckpt"):
        _flag(config, key, False)
    settings = config.get("xla_fsdp_settings")
    if settings is not None and not isinstance(settings, dict):
        raise ValueError(
            f"fsdp_config['xla_fsdp_settings']={settings!r} must be a dict of XLA FSDP "
            f"keyword arguments (e.g. {{'compute_dtype': 'bfloat16'}})."
        )
    used = [k for k in ("xla_fsdp_settings", "xla_fsdp_v2", "xla_fsdp_grad_ckpt") if config.get(k)]
    if used and not _flag(config, "xla", False):
        logger.warning(
            "fsdp_config sets %s but not xla=True; those keys configure XLA FSDP (TPUs, "
            "torch_xla) and are ignored. Set fsdp_config['xla']=True or remove them.",
            used,
        )


def parse_fsdp(fsdp: Any, fsdp_config: dict[str, Any] | None) -> FSDPSettings:
    """Check ``fsdp`` words and ``fsdp_config`` keys; return the settings they describe.

    Keys may carry the ``fsdp_`` prefix; ``fsdp=True`` and transformers 5's switch keys
    (``reshard_after_forward``, ``cpu_offload``, ``auto_wrap_policy``, ``version``) are
    read as TrainingArguments reads them. Keys this runtime does not know (an accelerate
    config's ``sharding_strategy`` or ``offload_params``, a typo) are ignored with a
    warning that names them, as the reference ignores them. Raises ``ValueError`` for
    unknown words, two strategies, a non-boolean flag, an unknown prefetch or state dict
    type, or ``min_num_params`` together with ``transformer_layer_cls_to_wrap``.
    """
    merged, config = merge_fsdp_switches(fsdp, unprefixed(fsdp_config))
    words = option_words(merged)
    unknown = sorted(set(config) - KNOWN_KEYS)
    if unknown:
        logger.warning(
            "fsdp_config key(s) %s are not FSDP settings this trainer reads and are ignored; "
            "the keys understood are %s (with or without an 'fsdp_' prefix). The sharding "
            "strategy and CPU offload come from the fsdp words (e.g. "
            "fsdp='full_shard offload auto_wrap').",
            unknown,
            sorted(KNOWN_KEYS),
        )
    _check_xla_keys(config)
    min_params = _min_num_params(config)
    layers = _layer_classes(config)
    if min_params > 0 and layers:
        raise ValueError(
            "fsdp_config sets both min_num_params and transformer_layer_cls_to_wrap; wrapping "
            "is either size-based or by layer class. Keep one of them."
        )
    return FSDPSettings(
        strategy=_strategy(words),
        offload="offload" in words,
        auto_wrap="auto_wrap" in words,
        min_num_params=min_params,
        layer_classes=layers,
        backward_prefetch=_choice(config, "backward_prefetch", _PREFETCH, "backward_pre"),
        forward_prefetch=_flag(config, "forward_prefetch", False),
        limit_all_gathers=_flag(config, "limit_all_gathers", True),
        activation_checkpointing=_flag(config, "activation_checkpointing", False),
        state_dict_type=_choice(config, "state_dict_type", _STATE_DICT_TYPES, "FULL_STATE_DICT"),
        sync_module_states=_flag(config, "sync_module_states", True),
        use_orig_params=_flag(config, "use_orig_params", True),
        cpu_ram_efficient_loading=_flag(config, "cpu_ram_efficient_loading", False),
    )


def _min_num_params(config: dict[str, Any]) -> int:
    """``min_num_params`` as an ``int`` (a whole float such as JSON's ``1e8`` too)."""
    value = config.get("min_num_params", 0) or 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"fsdp_config['min_num_params']={value!r} must be an integer >= 0.")
    return value
