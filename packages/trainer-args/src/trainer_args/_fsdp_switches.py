"""The transformers 5 way of asking for FSDP, folded into the ``fsdp`` option words.

Newer upstream releases turn FSDP on with ``fsdp=True`` (``--fsdp`` alone on the command
line) and describe it with ``fsdp_config`` keys instead of words: ``reshard_after_forward``
(the strategy), ``cpu_offload``, ``auto_wrap_policy`` and ``version``. Scripts written
for those releases must run unchanged, and scripts written for v4.34 keep their words,
so both spellings are turned into one list of words here. The arguments and the runtime
both call :func:`merge_fsdp_switches`, so they can never read a config differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer_args._field_types import FALSE_WORDS, TRUE_WORDS
from trainer_args._messages import conflict, invalid

FSDP_SWITCH_KEYS = frozenset(
    {"version", "reshard_after_forward", "cpu_offload", "auto_wrap_policy"}
)
"""The ``fsdp_config`` keys (without the ``fsdp_`` prefix) that choose what the words do."""

WRAP_POLICIES = ("TRANSFORMER_BASED_WRAP", "SIZE_BASED_WRAP", "NO_WRAP")

SIZE_BASED_DEFAULT_MIN_PARAMS = 100_000_000
"""Threshold of ``SIZE_BASED_WRAP`` without ``min_num_params``: torch's
``size_based_auto_wrap_policy`` default, which accelerate falls back to as well."""

_RESHARDS = {
    "full_shard": True,
    "hybrid_shard": True,
    "shard_grad_op": False,
    "hybrid_shard_zero2": False,
}
"""Whether each strategy frees the gathered parameters after forward (``no_shard``
gathers nothing, so it takes no ``reshard_after_forward``)."""


def merge_fsdp_switches(fsdp: Any, config: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The ``fsdp`` words and ``fsdp_config`` that ``fsdp`` and the switch keys ask for.

    ``fsdp=True`` means what it means upstream: ``full_shard`` with layer-class
    wrapping, changed by the keys (``reshard_after_forward=False``: ``shard_grad_op``;
    ``cpu_offload``: ``offload``; ``auto_wrap_policy="NO_WRAP"``: the whole model as one
    unit). Given together with words, the keys may add what the words leave out and
    must agree with what they say. ``version`` 1 and 2 are both run with torch's
    ``fully_shard`` (FSDP2).

    Args:
        fsdp: the ``fsdp`` argument (words, a list of words, True, or empty).
        config: ``fsdp_config`` with the ``fsdp_`` prefixes already taken off.

    Returns:
        ``fsdp`` unchanged when FSDP is off or no switch applies, otherwise the list of
        words; and the config, with ``min_num_params`` filled for ``SIZE_BASED_WRAP``.

    Raises:
        ValueError: a key holds a value upstream does not take, or contradicts a word.
    """
    if not fsdp or (fsdp is not True and not FSDP_SWITCH_KEYS & set(config)):
        return fsdp, dict(config)  # without fsdp, fsdp_config describes nothing to run
    _check_version(config.get("version"))
    words = _apply_reshard(fsdp_option_words(fsdp), config.get("reshard_after_forward"))
    if fsdp is True and not any(word in _RESHARDS or word == "no_shard" for word in words):
        words.insert(0, "full_shard")
    words = _apply_offload(words, config.get("cpu_offload"))
    merged = dict(config)
    words = _apply_wrap_policy(words, merged, fsdp is True)
    return words, merged


def fsdp_option_words(fsdp: Any) -> list[str]:
    """The ``fsdp`` option words, given as one string, strings or enum members (none for
    an empty value or ``True``, whose words come from :func:`merge_fsdp_switches`)."""
    if not fsdp or fsdp is True:
        return []
    if isinstance(fsdp, str):
        return fsdp.split()
    return [str(getattr(word, "value", word)) for word in fsdp]


def _check_version(version: Any) -> None:
    if version is not None and str(version) not in ("1", "2"):
        raise invalid(
            "fsdp_config['version']", version, "1 or 2", "Both run as torch's fully_shard here."
        )


def fsdp_flag(key: str, value: Any) -> bool:
    """``fsdp_config[key]`` as a bool: JSON true/false, 0/1, or a word accelerate's
    ``str_to_bool`` reads (true/false, yes/no, on/off, ... in any case).

    Raises:
        ValueError: any other value, naming the key.
    """
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise invalid(f"fsdp_config[{key!r}]", value, "true or false", "JSON true/false also work.")


def _apply_reshard(words: list[str], value: Any) -> list[str]:
    if value is None:
        return words
    reshard = fsdp_flag("reshard_after_forward", value)
    strategies = [word for word in words if word in _RESHARDS or word == "no_shard"]
    if not strategies:
        return [*words, "full_shard" if reshard else "shard_grad_op"]
    if _RESHARDS.get(strategies[0]) is not reshard:
        raise conflict(
            "fsdp",
            " ".join(words),
            "fsdp_config['reshard_after_forward']",
            value,
            "full_shard and hybrid_shard reshard after forward, shard_grad_op and "
            "hybrid_shard_zero2 do not, no_shard never shards: drop the key or the word.",
        )
    return words


def _apply_offload(words: list[str], value: Any) -> list[str]:
    if value is None:
        return words
    offload = fsdp_flag("cpu_offload", value)
    if offload and "offload" not in words:
        return [*words, "offload"]
    if not offload and "offload" in words:
        raise conflict(
            "fsdp",
            " ".join(words),
            "fsdp_config['cpu_offload']",
            value,
            "Drop the 'offload' word or the key.",
        )
    return words


def _apply_wrap_policy(words: list[str], config: dict[str, Any], default_wrap: bool) -> list[str]:
    """``auto_wrap`` from ``auto_wrap_policy`` (``fsdp=True`` wraps layers by default)."""
    policy = config.get("auto_wrap_policy")
    if policy is None:
        return [*words, "auto_wrap"] if default_wrap and "auto_wrap" not in words else words
    name = str(policy).upper()
    if name not in WRAP_POLICIES:
        raise invalid("fsdp_config['auto_wrap_policy']", policy, f"one of {list(WRAP_POLICIES)}")
    if name == "NO_WRAP":
        if "auto_wrap" in words:
            raise conflict(
                "fsdp", " ".join(words), "fsdp_config['auto_wrap_policy']", policy,
                "Drop the 'auto_wrap' word or the NO_WRAP policy.",
            )  # fmt: skip
        return words
    if name == "SIZE_BASED_WRAP" and not config.get("min_num_params"):
        config["min_num_params"] = SIZE_BASED_DEFAULT_MIN_PARAMS
    if name == "TRANSFORMER_BASED_WRAP" and config.get("min_num_params"):
        raise conflict(
            "fsdp_config['auto_wrap_policy']", policy,
            "fsdp_config['min_num_params']", config["min_num_params"],
            "min_num_params selects SIZE_BASED_WRAP; keep one of the two policies.",
        )  # fmt: skip
    return words if "auto_wrap" in words else [*words, "auto_wrap"]
