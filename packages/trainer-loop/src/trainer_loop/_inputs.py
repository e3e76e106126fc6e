"""Helpers that look at a batch: where its tensors go, how many items its loss covers."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

IGNORE_INDEX = -100
"""Label value of positions that carry no loss (the reference's padding index)."""


def move_to_device(data: Any, device: torch.device) -> Any:
    """Move every tensor nested in dicts, lists and tuples to ``device``.

    Tensors already there are returned as they are, so the CPU path costs one comparison
    per tensor and no copy.
    """
    if isinstance(data, torch.Tensor):
        if data.device == device:
            return data
        return data.to(device, non_blocking=True)
    if isinstance(data, Mapping):
        return type(data)({key: move_to_device(value, device) for key, value in data.items()})
    if isinstance(data, (list, tuple)) and not isinstance(data, str):
        moved = [move_to_device(value, device) for value in data]
        return type(data)(*moved) if hasattr(data, "_fields") else type(data)(moved)
    return data


def count_loss_items(inputs: Mapping[str, Any], label_name: str | None) -> torch.Tensor | None:
    """How many items the batch's loss averages over, as a device tensor (no host sync).

    Integer labels count the positions not equal to -100 (tokens); other labels count
    rows. None when the batch carries no labels.
    """
    if label_name is None:
        return None
    labels = inputs.get(label_name)
    if not isinstance(labels, torch.Tensor):
        return None
    if labels.is_floating_point() or labels.dim() == 0:
        return torch.tensor(max(labels.shape[0] if labels.dim() else 1, 1), device=labels.device)
    return (labels != IGNORE_INDEX).sum()


def accepts_argument(function: Any, name: str) -> bool:
    """Whether ``function`` has a parameter called ``name`` (explicitly, not via **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters


def model_accepts_loss_kwargs(model: Any) -> bool:
    """Whether the model normalises its loss by a ``num_items_in_batch`` it is given.

    transformers models say so with ``accepts_loss_kwargs``; other models must name the
    parameter in ``forward``. A bare ``**kwargs`` is not taken as a promise, because a
    model that ignored the count would then be trained with the wrong loss scale.
    """
    declared = getattr(model, "accepts_loss_kwargs", None)
    if declared is not None:
        return bool(declared) and _forward_takes_kwargs(model)
    return accepts_argument(model.forward, "num_items_in_batch")


def _forward_takes_kwargs(model: Any) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD or p.name == "num_items_in_batch"
        for p in parameters
    )
