"""FSDP announced by ``accelerate launch``, as the ``fsdp`` words and ``fsdp_config`` keys.

A script run with ``accelerate launch --config_file fsdp.yaml`` (``distributed_type:
FSDP``) or ``accelerate launch --use_fsdp ...`` passes no FSDP argument to the Trainer:
the launcher describes FSDP to each process through ``ACCELERATE_USE_FSDP`` and
``FSDP_*`` environment variables. Reading them here lets such a script shard its model
unchanged, instead of silently training as plain DDP. The result goes through the same
validation (:func:`trainer_dist._fsdp_settings.parse_fsdp`) as the arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

_STRATEGY_NAMES = ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD", "HYBRID_SHARD_ZERO2")
"""accelerate's sharding strategies in the order of their numbers (1 is FULL_SHARD)."""

_WRAP_POLICIES = ("TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP")
_PREFETCH = {"BACKWARD_PRE": "backward_pre", "BACKWARD_POST": "backward_post"}
_STATE_DICT_TYPES = ("FULL_STATE_DICT", "SHARDED_STATE_DICT")
_FLAGS = {
    "FSDP_FORWARD_PREFETCH": "forward_prefetch",
    "FSDP_USE_ORIG_PARAMS": "use_orig_params",
    "FSDP_SYNC_MODULE_STATES": "sync_module_states",
    "FSDP_ACTIVATION_CHECKPOINTING": "activation_checkpointing",
    "FSDP_CPU_RAM_EFFICIENT_LOADING": "cpu_ram_efficient_loading",
}
_NOT_HONOURED = {
    "FSDP_IGNORED_MODULES": "fsdp_ignored_modules (the modules are sharded with the rest)",
    "FSDP_ACTIVATION_CHECKPOINTING_OFFLOAD": (
        "fsdp_activation_checkpointing_offload (checkpointed activations stay on the device)"
    ),
}
_SIZE_POLICY_DEFAULT = 100_000_000
"""torch's ``size_based_auto_wrap_policy`` default, which accelerate keeps for a
``fsdp_min_num_params`` of 0 or none."""


def accelerate_fsdp_request(environ: Mapping[str, str]) -> tuple[str, dict[str, Any]] | None:
    """The ``fsdp`` words and ``fsdp_config`` an ``accelerate launch`` with FSDP announced.

    ``None`` when the launcher did not ask for FSDP (``ACCELERATE_USE_FSDP`` unset or
    false). FSDP version 1 takes its strategy from ``FSDP_SHARDING_STRATEGY`` (a name or
    accelerate's number, 1 = FULL_SHARD); version 2 from ``FSDP_RESHARD_AFTER_FORWARD``
    (true: full_shard, false: shard_grad_op). Both versions run as torch's
    ``fully_shard`` here.

    Raises:
        ValueError: a variable holds a value accelerate itself would not accept, or one
            this runtime cannot honour (``LOCAL_STATE_DICT``); the message names the
            variable, its value and the accelerate config key to change.
    """
    if not _true(environ, "ACCELERATE_USE_FSDP"):
        return None
    words = [_strategy(environ)]
    if _true(environ, "FSDP_OFFLOAD_PARAMS"):
        words.append("offload")
    config: dict[str, Any] = {}
    words.extend(_wrapping(environ, config))
    prefetch = _upper(environ, "FSDP_BACKWARD_PREFETCH")
    if prefetch and prefetch != "NO_PREFETCH":
        config["backward_prefetch"] = _one_of(
            "FSDP_BACKWARD_PREFETCH", prefetch, tuple(_PREFETCH), key="fsdp_backward_prefetch"
        ).lower()
    elif prefetch == "NO_PREFETCH":
        config["backward_prefetch"] = "no_prefetch"
    # accelerate's default: full state dicts for FSDP 1, sharded ones for FSDP 2.
    version_2 = environ.get("FSDP_VERSION", "1").strip() == "2"
    state_dict_type = _upper(environ, "FSDP_STATE_DICT_TYPE") or (
        "SHARDED_STATE_DICT" if version_2 else ""
    )
    if state_dict_type:
        config["state_dict_type"] = _one_of(
            "FSDP_STATE_DICT_TYPE", state_dict_type, _STATE_DICT_TYPES, key="fsdp_state_dict_type"
        )
    for variable, key in _FLAGS.items():
        if environ.get(variable, "").strip():
            config[key] = _true(environ, variable)
    _warn_not_honoured(environ)
    return " ".join(words), config


def _warn_not_honoured(environ: Mapping[str, str]) -> None:
    for variable, setting in _NOT_HONOURED.items():
        raw = environ.get(variable, "").strip()
        if raw and raw.lower() not in ("none", "false", "0", "no"):
            logger.warning(
                "accelerate launch set %s=%s, which this trainer does not support: %s. "
                "Remove %s from the accelerate config to silence this warning.",
                variable,
                raw,
                setting,
                setting.split(" ")[0],
            )


def _strategy(environ: Mapping[str, str]) -> str:
    version = environ.get("FSDP_VERSION", "1").strip() or "1"
    if version == "2":
        reshard = environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").strip() or "true"
        if reshard.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(
                f"FSDP_RESHARD_AFTER_FORWARD={reshard!r}: FSDP version 2 takes true or false "
                f"(accelerate config key fsdp_reshard_after_forward)."
            )
        return "full_shard" if _true(environ, "FSDP_RESHARD_AFTER_FORWARD") else "shard_grad_op"
    if version != "1":
        raise ValueError(
            f"FSDP_VERSION={version!r} is not an FSDP version; accelerate's fsdp_version is 1 or 2."
        )
    raw = _upper(environ, "FSDP_SHARDING_STRATEGY") or "FULL_SHARD"
    if raw.isdigit() and 1 <= int(raw) <= len(_STRATEGY_NAMES):
        raw = _STRATEGY_NAMES[int(raw) - 1]
    return _one_of(
        "FSDP_SHARDING_STRATEGY", raw, _STRATEGY_NAMES, key="fsdp_sharding_strategy"
    ).lower()


def _wrapping(environ: Mapping[str, str], config: dict[str, Any]) -> list[str]:
    """The ``auto_wrap`` word (or none) for the wrap policy; fills its config key."""
    policy = _upper(environ, "FSDP_AUTO_WRAP_POLICY")
    if not policy or policy == "NONE":
        return []
    policy = _one_of("FSDP_AUTO_WRAP_POLICY", policy, _WRAP_POLICIES, key="fsdp_auto_wrap_policy")
    if policy == "TRANSFORMER_BASED_WRAP":
        classes = environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").strip()
        if classes and classes.lower() != "none":
            config["transformer_layer_cls_to_wrap"] = classes
        return ["auto_wrap"]
    if policy == "SIZE_BASED_WRAP":
        raw = environ.get("FSDP_MIN_NUM_PARAMS", "").strip() or "0"
        if not raw.isdigit():
            raise ValueError(
                f"FSDP_MIN_NUM_PARAMS={raw!r} is not a whole number of parameters "
                f"(accelerate config key fsdp_min_num_params)."
            )
        config["min_num_params"] = int(raw) or _SIZE_POLICY_DEFAULT
        return ["auto_wrap"]
    return []


def _one_of(variable: str, value: str, allowed: tuple[str, ...], *, key: str) -> str:
    if value not in allowed:
        raise ValueError(
            f"{variable}={value!r} (set by accelerate launch from its {key}) is not supported "
            f"here; use one of {list(allowed)} in the accelerate config."
        )
    return value


def _upper(environ: Mapping[str, str], variable: str) -> str:
    return environ.get(variable, "").strip().upper()


def _true(environ: Mapping[str, str], variable: str) -> bool:
    return environ.get(variable, "").strip().lower() in ("true", "1", "yes")
