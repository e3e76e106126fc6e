"""Helpers that look at a batch: where its tensors go, how many items its loss covers."""

from __future__ import annotations

import inspect
import typing
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


def count_loss_items(
    inputs: Mapping[str, Any], label_name: str | None, *, shifted: bool = False
) -> torch.Tensor | None:
    """How many items the batch's loss averages over, as a device tensor (no host sync).

    Integer labels count the positions not equal to -100 (tokens); other labels count
    rows. ``shifted`` is for causal LMs, which predict each token from the ones before
    it and so never score a row's first label: counting as the model does keeps a loss
    split across processes or micro-batches equal to the loss of the whole batch. None
    when the batch carries no labels.
    """
    if label_name is None:
        return None
    labels = inputs.get(label_name)
    if not isinstance(labels, torch.Tensor):
        return None
    if labels.is_floating_point() or labels.dim() == 0:
        return torch.tensor(max(labels.shape[0] if labels.dim() else 1, 1), device=labels.device)
    given = inputs.get("shift_labels")  # a collator's own shifted targets (padding-free)
    if isinstance(given, torch.Tensor):
        return (given != IGNORE_INDEX).sum()
    if shifted and labels.dim() > 1:
        labels = labels[..., 1:]
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

    transformers models say so with ``accepts_loss_kwargs``, or (transformers 5) with a
    ``**kwargs: Unpack[TransformersKwargs]`` whose keys include ``num_items_in_batch``;
    other models must name the parameter in ``forward``. A bare ``**kwargs`` is not taken
    as a promise, because a model that ignored the count would then be trained with the
    wrong loss scale.
    """
    declared = getattr(model, "accepts_loss_kwargs", None)
    if declared is not None:
        return bool(declared) and _forward_takes_kwargs(model)
    return accepts_argument(model.forward, "num_items_in_batch") or _typed_kwargs_name(
        model.forward, "num_items_in_batch"
    )


def _typed_kwargs_name(function: Any, name: str) -> bool:
    """Whether ``function``'s ``**kwargs`` is typed ``Unpack[SomeTypedDict]`` with key ``name``.

    String annotations (``from __future__ import annotations``) are evaluated in the
    function's module; one that cannot be evaluated counts as no promise.
    """
    try:
        parameters = inspect.signature(function, eval_str=True).parameters.values()
    except Exception:  # any failure to evaluate a user's annotations
        return False
    for parameter in parameters:
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD:
            continue
        arguments = typing.get_args(parameter.annotation)
        if typing.get_origin(parameter.annotation) is typing.Unpack and arguments:
            # A TypedDict's annotations include the keys of the TypedDicts it extends.
            return name in getattr(arguments[0], "__annotations__", {})
    return False


def _forward_takes_kwargs(model: Any) -> bool:
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD or p.name == "num_items_in_batch"
        for p in parameters
    )


def is_causal_lm(model: Any) -> bool:
    """Whether ``model`` scores each token from the ones before it, and so shifts its
    labels by one position inside its loss.

    True for ``*ForCausalLM`` classes, for transformers models whose loss is the causal
    LM loss (``loss_type``), and for those registered as causal LMs under other names
    (``GPT2LMHeadModel``...); never for encoder-decoder models, whose targets are not
    shifted against the labels.
    """
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return False
    name = type(model).__name__
    if name.endswith("ForCausalLM") or getattr(model, "loss_type", None) == "ForCausalLM":
        return True
    if not type(model).__module__.startswith("transformers."):
        return False
    try:  # transformers is imported already: the model's class comes from it
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:
        return False
    return name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
