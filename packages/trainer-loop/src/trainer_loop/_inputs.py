"""Helpers that look at a batch: where its tensors go, how many items its loss covers."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
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


def call_model(model: Any, inputs: Any) -> Any:
    """``model(**inputs)``, saying what to change when the batch is not a mapping.

    Python's own error ("argument after ** must be a mapping, not list") starts with the
    model's whole repr and does not point at the collator that built the batch. The
    check runs only once the call has failed, so a working step pays nothing for it.
    """
    try:
        return model(**inputs)
    except TypeError:
        if isinstance(inputs, Mapping):
            raise  # the model's own error
        raise TypeError(_not_a_mapping(inputs)) from None


def _not_a_mapping(inputs: Any) -> str:
    kind = type(inputs).__name__
    size = f" of {len(inputs)} items" if isinstance(inputs, (list, tuple)) else ""
    return (
        f"The batch is a {kind}{size}, but Trainer calls model(**batch), which needs a dict "
        "(or another mapping) from the forward's argument names to tensors, e.g. "
        "{'input_ids': ..., 'labels': ...}. Make the data_collator (or, with the default "
        "collator, the dataset's items) return such dicts."
    )


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


def adapter_base_model(model: Any) -> Any:
    """The model a PEFT wrapper (``peft.get_peft_model``) trains adapters on, else
    ``model`` itself. Duck-typed on ``peft_config`` and ``get_base_model``, so that
    peft is never imported; a transformers model given adapters with ``add_adapter``
    has no ``get_base_model`` and is its own base."""
    get_base_model = getattr(model, "get_base_model", None)
    if not getattr(model, "peft_config", None) or not callable(get_base_model):
        return model
    base = get_base_model()
    return base if base is not None else model


def model_accepts_loss_kwargs(model: Any) -> bool:
    """Whether the model normalises its loss by a ``num_items_in_batch`` it is given.

    transformers models say so with ``accepts_loss_kwargs``, or by passing their
    ``**kwargs`` on to ``self.loss_function`` (GPT-2, Llama...); other models must name
    the parameter in ``forward``. A ``**kwargs``, even one typed
    ``Unpack[TransformersKwargs]`` with that key, is no promise: every transformers 5
    model types its ``**kwargs`` so, but many (BERT's heads, T5) compute a plain mean
    loss and ignore the count, and would then be trained with their loss multiplied by
    the number of processes and micro-batches. Such models get the count applied from
    outside instead (see :func:`count_loss_items`), which is exact for mean losses. A
    model of the user's whose ``forward(**kwargs)`` reads ``num_items_in_batch`` by name
    is given it, as the reference would.

    A PEFT wrapper (LoRA...) is judged by the model it wraps, since its ``forward``
    passes its keywords on: a LoRA Llama takes the count as the Llama does.
    """
    base = adapter_base_model(model)
    if base is not model:
        return _forward_takes_kwargs(model) and model_accepts_loss_kwargs(base)
    declared = getattr(model, "accepts_loss_kwargs", None)
    if declared is not None:
        return bool(declared) and _forward_takes_kwargs(model)
    if accepts_argument(model.forward, "num_items_in_batch"):
        return True
    return _forward_takes_kwargs(model) and _forward_uses_count(type(model))


@functools.lru_cache(maxsize=64)
def _forward_uses_count(model_class: type) -> bool:
    """Whether the class's ``forward`` calls ``<something>.loss_function(..., **kwargs)``
    or names ``num_items_in_batch`` (``kwargs.get("num_items_in_batch")``...).

    Read from the source once per class; a forward whose source cannot be read makes no
    promise (the count is then applied from outside).
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(model_class.forward)))
    except (OSError, TypeError, SyntaxError):
        return False
    return any(_passes_kwargs_to_loss(node) or _names_count(node) for node in ast.walk(tree))


def _passes_kwargs_to_loss(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "loss_function"
        and any(keyword.arg is None for keyword in node.keywords)
    )


def _names_count(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value == "num_items_in_batch") or (
        isinstance(node, ast.Name) and node.id == "num_items_in_batch"
    )


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
    shifted against the labels. A PEFT wrapper is judged by the model it wraps (a
    ``PeftModel`` made without a ``task_type`` keeps the base model's loss).
    """
    model = adapter_base_model(model)
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
