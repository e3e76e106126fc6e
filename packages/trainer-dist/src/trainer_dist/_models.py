"""Model placement and the wrappers the runtime puts around (and takes off) a model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def unwrap_model(model: Any) -> Any:
    """Return the user's module inside ``DataParallel``, DDP and ``torch.compile`` wrappers.

    Wrappers nest in any order (``torch.compile(DDP(model))``); all are removed. A model
    that is not wrapped is returned as it is.
    """
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def is_compiled(model: Any) -> bool:
    """Whether ``model`` is a ``torch.compile`` wrapper (the outermost layer)."""
    return isinstance(getattr(model, "_orig_mod", None), nn.Module)


def is_data_parallel(model: Any) -> bool:
    """Whether a (possibly compiled) ``model`` is already wrapped for data parallelism."""
    if is_compiled(model):
        model = model._orig_mod
    return isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel))


def can_move(model: Any) -> bool:
    """Whether ``.to(device)`` is allowed on ``model``.

    Models dispatched over several devices (``device_map``) and quantized models
    (bitsandbytes 8/4-bit) are placed by whoever loaded them; moving them breaks them.
    """
    device_map = getattr(model, "hf_device_map", None)
    if isinstance(device_map, dict) and len(set(device_map.values())) > 1:
        return False
    flags = ("is_quantized", "is_loaded_in_8bit", "is_loaded_in_4bit")
    return not any(getattr(model, flag, False) for flag in flags)


def compile_model(model: Any, *, backend: str | None, mode: str | None) -> Any:
    """``torch.compile`` the model unless it already is; ``backend`` defaults to inductor."""
    if is_compiled(model):
        return model
    return torch.compile(model, backend=backend or "inductor", mode=mode)


def ipex_optimize(ipex: Any, model: Any, *, training: bool, dtype: torch.dtype) -> Any:
    """Apply Intel Extension for PyTorch's operator optimisations to ``model``.

    For training, weight prepacking is off: it would replace parameters after the
    optimizer was built from them, and the runtime sees the optimizer only later.
    """
    model.train(training)
    if training:
        return ipex.optimize(model, dtype=dtype, level="O1", inplace=True, weights_prepack=False)
    return ipex.optimize(model, dtype=dtype, level="O1", inplace=True, conv_bn_folding=False)
