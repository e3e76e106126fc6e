"""Estimated floating point operations of a training step (``state.total_flos``).

A model that counts its own (``model.floating_point_ops(inputs)``, as transformers 4's
models and custom models following its docs do) is asked. Otherwise a model that can
count its parameters (``model.num_parameters(exclude_embeddings=...)``, every
transformers ``PreTrainedModel``, including transformers 5's, which dropped
``floating_point_ops``) gets the usual estimate: 6 operations (2 forward, 4 backward)
per non-embedding parameter per token of the model's main input. Anything else counts
as 0, and the loop then skips the counting altogether.

Counting the parameters walks the whole module tree, so the count is kept per model
until :func:`forget_parameter_count` (called at the start of every training run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

from torch import nn

_FLOPS_PER_PARAMETER_AND_TOKEN = 6
_parameter_counts: WeakKeyDictionary[nn.Module, int] = WeakKeyDictionary()


def can_estimate_flops(model: Any) -> bool:
    """Whether :func:`estimate_flops` can give ``model`` a non-zero estimate."""
    return (
        getattr(model, "floating_point_ops", None) is not None
        or getattr(model, "num_parameters", None) is not None
    )


def estimate_flops(model: Any, inputs: Any) -> int:
    """FLOPs of one forward and backward pass of ``model`` on the batch ``inputs``.

    0 when the model can tell neither (see the module docstring) or the batch lacks the
    model's main input (``model.main_input_name``, ``"input_ids"`` by default).
    """
    own_counter = getattr(model, "floating_point_ops", None)
    if own_counter is not None:
        return own_counter(inputs)
    if getattr(model, "num_parameters", None) is None or not isinstance(inputs, Mapping):
        return 0
    main_input = inputs.get(getattr(model, "main_input_name", "input_ids"))
    tokens = getattr(main_input, "numel", None)
    if tokens is None:
        return 0
    return _FLOPS_PER_PARAMETER_AND_TOKEN * tokens() * _non_embedding_parameters(model)


def forget_parameter_count(model: Any) -> None:
    """Count ``model``'s parameters afresh next time (its modules may have changed)."""
    if isinstance(model, nn.Module):
        _parameter_counts.pop(model, None)


def _non_embedding_parameters(model: Any) -> int:
    if not isinstance(model, nn.Module):
        return int(model.num_parameters(exclude_embeddings=True))
    count = _parameter_counts.get(model)
    if count is None:
        if _is_partitioned(model):
            count = _partitioned_non_embedding_parameters(model)
        else:
            count = int(model.num_parameters(exclude_embeddings=True))
        _parameter_counts[model] = count
    return count


def _is_partitioned(model: nn.Module) -> bool:
    """Whether DeepSpeed ZeRO-3 holds the parameters: each process then keeps a slice,
    and ``numel()`` of the local tensor is 0 outside a gather."""
    return any(hasattr(parameter, "ds_numel") for parameter in model.parameters())


def _partitioned_non_embedding_parameters(model: nn.Module) -> int:
    """The non-embedding parameter count of a ZeRO-3 model, from each parameter's full
    size (``ds_numel``): ``num_parameters`` would add up the empty local tensors, and
    the run would report ``total_flos`` 0."""
    embedding_weights = {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding)
    }
    return sum(
        int(getattr(parameter, "ds_numel", parameter.numel()))
        for name, parameter in model.named_parameters()
        if name not in embedding_weights
    )
