"""Adapter checkpoints: what a PEFT model (LoRA and the like) saves in place of weights.

A ``peft.PeftModel`` (or a transformers model given adapters with ``add_adapter``) saves
only its adapter: ``save_pretrained`` writes ``adapter_config.json`` and
``adapter_model.safetensors`` (``adapter_model.bin`` without safetensors), a few
megabytes where the frozen base model may take gigabytes. Such a folder is a complete
checkpoint: the base weights never change during training, so resuming or loading the
best checkpoint only has to put the adapter back, which the model does itself
(``load_adapter``, the call the reference Trainer makes).

Everything here is duck-typed on those file names and on the model's ``peft_config`` and
``load_adapter``, so trainer-checkpoint never imports peft.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Collection, Iterator, Mapping
from typing import Any

__all__ = [
    "ADAPTER_CONFIG_NAME",
    "ADAPTER_SAFE_WEIGHTS_NAME",
    "ADAPTER_WEIGHTS_NAME",
    "adapter_names",
    "adapter_owner",
    "has_adapter",
    "load_adapter",
    "named_adapter_folders",
    "wrapped_chain",
]

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_SAFE_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_WEIGHTS_NAME = "adapter_model.bin"
ADAPTER_WEIGHT_FILES = (ADAPTER_SAFE_WEIGHTS_NAME, ADAPTER_WEIGHTS_NAME)


def _holds_adapter_files(folder: str) -> bool:
    if not os.path.isfile(os.path.join(folder, ADAPTER_CONFIG_NAME)):
        return False
    return any(os.path.isfile(os.path.join(folder, name)) for name in ADAPTER_WEIGHT_FILES)


def named_adapter_folders(folder: str) -> dict[str, str]:
    """The adapters ``save_pretrained`` of a PEFT model stored in sub-folders of
    ``folder``, by name: PEFT writes the adapter named "default" at the top and every
    other one (``get_peft_model(..., adapter_name="mine")``) in a folder of its name."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return {}
    return {
        entry.name: entry.path
        for entry in entries
        if entry.is_dir() and _holds_adapter_files(entry.path)
    }


def has_adapter(folder: str, names: Collection[str] | None = None) -> bool:
    """Whether ``folder`` holds adapters as ``save_pretrained`` of a PEFT model writes
    them: config and weights at the top (the "default" adapter) or in sub-folders named
    after the adapters (only those in ``names``, the model's adapters, when given: a
    composite model may save a sub-model of its own that looks like one)."""
    if _holds_adapter_files(folder):
        return True
    named = named_adapter_folders(folder)
    return any(name in names for name in named) if names is not None else bool(named)


def adapter_names(model: Any) -> list[str] | None:
    """The names of ``model``'s adapters (its ``peft_config`` keys); None without any."""
    owner = adapter_owner(model)
    config = getattr(owner, "peft_config", None) if owner is not None else None
    return list(config) if isinstance(config, Mapping) else None


def wrapped_chain(model: Any) -> Iterator[Any]:
    """``model``, then the models wrappers hold as ``.module`` (DDP, the loop's adapters),
    outermost first: where a loader looks for the model that can read a checkpoint."""
    seen: set[int] = set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        yield model
        model = getattr(model, "module", None)


def adapter_owner(model: Any) -> Any | None:
    """The module that holds adapters (``peft_config`` and ``load_adapter``), looked for
    through wrappers (see :func:`wrapped_chain`)."""
    return next(
        (
            inner
            for inner in wrapped_chain(model)
            if getattr(inner, "peft_config", None)
            and callable(getattr(inner, "load_adapter", None))
        ),
        None,
    )


def _active_adapter(owner: Any) -> str:
    """The adapter being trained: a property on ``PeftModel``, a method on transformers'
    adapter mixin; the first one when several are active (as the reference does)."""
    active = getattr(owner, "active_adapters", None)
    if callable(active):
        active = active()
    if isinstance(active, str):
        return active
    return active[0] if active else "default"


def load_adapter(folder: str, model: Any, *, device: Any = None) -> None:
    """Load the adapter saved in ``folder`` into ``model``'s active adapter, in place; or,
    when ``folder`` stores named adapters in sub-folders, each into the adapter of its
    name (only the active one trainable, then made active again), as the reference does.

    The parameters keep their identity (the optimizer refers to them) and stay
    trainable. The base weights are left as they are: an adapter checkpoint holds none.

    Raises:
        ValueError: ``model`` has no adapters, or the stored adapter does not fit it.
    """
    owner = adapter_owner(model)
    if owner is None:
        raise ValueError(
            f"{folder} holds a PEFT adapter ({ADAPTER_CONFIG_NAME}) and no full weights, but "
            f"{type(model).__name__} has no adapters to load it into (no peft_config / "
            "load_adapter). Wrap the base model with peft.get_peft_model (the same "
            "LoraConfig) before loading this checkpoint, or load it with "
            "peft.PeftModel.from_pretrained(base_model, folder)."
        )
    active = _active_adapter(owner)
    named = named_adapter_folders(folder)
    if not named:  # one adapter, at the top: the one being trained
        _load_one(owner, folder, active, trainable=True, device=device)
        return
    if _holds_adapter_files(folder):  # beside named ones, the top holds "default"
        named = {"default": folder, **named}
    for name, path in named.items():
        _load_one(owner, path, name, trainable=name == active, device=device)
    set_adapter = getattr(owner, "set_adapter", None)
    if callable(set_adapter):  # loading may have switched to the last adapter loaded
        set_adapter(active)


def _load_one(owner: Any, folder: str, name: str, *, trainable: bool, device: Any) -> None:
    loader = owner.load_adapter
    options: dict[str, Any] = {"is_trainable": trainable}
    if device is not None and "torch_device" in _named_parameters(loader):
        options["torch_device"] = str(device)
    result = loader(folder, adapter_name=name, **options)
    missing = list(getattr(result, "missing_keys", None) or [])
    unexpected = list(getattr(result, "unexpected_keys", None) or [])
    if missing or unexpected:
        raise ValueError(
            f"The adapter in {folder} does not fit {type(owner).__name__}: missing "
            f"{missing[:10]}, unexpected {unexpected[:10]}. Load it into a model wrapped "
            "with the same adapter configuration it was trained with."
        )


def _named_parameters(function: Any) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()
