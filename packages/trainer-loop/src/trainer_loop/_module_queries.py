"""Questions about a model's modules that scripts and wrapping policies ask."""

from __future__ import annotations

from torch import nn


def get_model_param_count(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameter elements of ``model`` (those requiring grad if
    ``trainable_only``).

    Under DeepSpeed ZeRO-3 a parameter is partitioned and holds almost nothing locally;
    its full size is then in ``ds_numel``, which is used when present so the count is
    the model's, not the local shard's.
    """
    total = 0
    for parameter in model.parameters():
        if trainable_only and not parameter.requires_grad:
            continue
        full_size = getattr(parameter, "ds_numel", None)
        total += parameter.numel() if full_size is None else full_size
    return total


def get_module_class_from_name(module: nn.Module, name: str) -> type[nn.Module] | None:
    """The class of the first module of ``module`` (itself included, depth first) whose
    class is called ``name``, or None.

    FSDP auto-wrap policies take layer classes, while configs name them as strings
    (``fsdp_transformer_layer_cls_to_wrap``); this resolves one to the other.
    """
    for child in module.modules():
        if type(child).__name__ == name:
            return type(child)
    return None
