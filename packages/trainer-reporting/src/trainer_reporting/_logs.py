"""What every reporter does to the loop's logs before sending them anywhere.

The loop logs flat keys (``loss``, ``eval_loss``, ``test_accuracy``); trackers show
metrics grouped by a ``section/`` prefix. The grouping, the "is this a number" test and
the reading of on/off environment variables are shared here so that the three reporters
agree on them.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from typing import Any

TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
"""Spellings of "on" accepted in environment variables, as the reference accepts them."""

_PREFIXES = (("eval_", "eval/"), ("test_", "test/"))


def rewrite_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Group log keys by section: ``eval_x`` -> ``eval/x``, ``test_x`` -> ``test/x``,
    anything else -> ``train/x``.

    Trackers draw one panel per section, so evaluation and training curves of the same
    quantity (``eval/loss``, ``train/loss``) land side by side.
    """
    rewritten: dict[str, Any] = {}
    for key, value in logs.items():
        rewritten[_section_key(key)] = value
    return rewritten


def _section_key(key: str) -> str:
    for flat, section in _PREFIXES:
        if key.startswith(flat):
            return section + key[len(flat) :]
    return "train/" + key


def scalar_value(value: Any) -> int | float | None:
    """``value`` as a plain number, or None when it is not one.

    Accepts Python and NumPy numbers and one-element tensors or arrays (anything with
    ``item()`` and a size of one), so a metric computed as a tensor is still reported.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real):
        return value if isinstance(value, (int, float)) else float(value)
    if hasattr(value, "item") and _size(value) == 1:
        item = value.item()
        return item if isinstance(item, (int, float)) else None
    return None


def _size(value: Any) -> int | None:
    numel = getattr(value, "numel", None)
    if callable(numel):
        return int(numel())
    size = getattr(value, "size", None)
    return size if isinstance(size, int) else None


def env_flag(name: str, default: str = "FALSE") -> bool:
    """Whether the environment variable ``name`` is set to one of :data:`TRUE_VALUES`."""
    return os.getenv(name, default).upper() in TRUE_VALUES


def model_config_dict(model: Any) -> dict[str, Any] | None:
    """The model's configuration as a dict (``model.config``), or None if it has none.

    Works with a transformers ``PretrainedConfig`` (``to_dict()``) and with a plain dict,
    so that reporters never need transformers to record a configuration.
    """
    config = getattr(model, "config", None)
    if config is None:
        return None
    if isinstance(config, Mapping):
        return dict(config)
    to_dict = getattr(config, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else None


def run_settings(args: Any) -> dict[str, Any]:
    """``args.to_dict()`` without private entries: what a tracker shows as the run's
    settings (our arguments keep a ``_``-named record there for rebuilding copies)."""
    return {key: value for key, value in args.to_dict().items() if not key.startswith("_")}


def run_settings_json(args: Any) -> str:
    """:func:`run_settings` as indented JSON: the arguments' text a tracker shows.

    ``args.to_json_string()`` would also show our private ``_`` record, which is there to
    rebuild copies of the arguments and means nothing to a reader of the run.
    """
    return json.dumps(run_settings(args), indent=2, default=str)


def model_config_json(model: Any) -> str | None:
    """The model's configuration as JSON text, or None if it has none."""
    config = getattr(model, "config", None)
    to_json = getattr(config, "to_json_string", None)
    if callable(to_json):
        return str(to_json())
    as_dict = model_config_dict(model)
    return None if as_dict is None else json.dumps(as_dict, indent=2, sort_keys=True, default=str)


def count_parameters(model: Any) -> int | None:
    """Number of parameters of ``model``: ``num_parameters()`` when the model has it (a
    transformers model), else the sum over ``parameters()``; None for anything else."""
    num_parameters = getattr(model, "num_parameters", None)
    if callable(num_parameters):
        return int(num_parameters())
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        return sum(int(p.numel()) for p in parameters())
    return None
