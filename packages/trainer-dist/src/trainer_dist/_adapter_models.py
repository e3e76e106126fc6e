"""Models that train adapters on a frozen base: PEFT's LoRA and the like.

A PEFT model (``peft.get_peft_model``, or a transformers model given ``add_adapter``)
trains a few adapter weights; its base weights are frozen and come, on every run, from
the files the model was built from. The sharded checkpoints the runtimes write (ZeRO's
``global_step<N>/``, the DCP folder of a sharded FSDP state dict) therefore leave the
frozen parameters out, as the reference's do for such models: with them, every
checkpoint would hold another copy of the base model, often hundreds of times the size
of the adapter. Loading one of those checkpoints fills the trainable parameters and
leaves the frozen ones as the model was built.

Duck-typed on ``peft_config`` (what both kinds of adapter model carry), so that
trainer-dist never imports peft.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

__all__ = ["frozen_parameter_names", "load_module_state", "trains_adapters"]


def trains_adapters(module: Any) -> bool:
    """Whether ``module`` (unwrapped by the runtime) is an adapter model with frozen
    parameters: its checkpoints may leave those out."""
    if not getattr(module, "peft_config", None):
        return False
    return any(not parameter.requires_grad for parameter in module.parameters())


def frozen_parameter_names(module: Any) -> set[str]:
    """The names (as in ``state_dict``) of ``module``'s parameters that do not train."""
    return {name for name, parameter in module.named_parameters() if not parameter.requires_grad}


def unexpected_missing(module: Any, missing: Iterable[str]) -> list[str]:
    """The names in ``missing`` (keys a checkpoint lacked) that are not frozen
    parameters of ``module``: an adapter checkpoint may lack only those."""
    frozen = frozen_parameter_names(module)
    return sorted(name for name in missing if name not in frozen)


def load_module_state(module: nn.Module, state: dict[str, Any], *, strict: bool) -> None:
    """``module.load_state_dict(state)``; not ``strict``: only frozen parameters may be
    missing (an adapter model's checkpoint), and nothing may be unexpected.

    Raises:
        RuntimeError: ``state`` does not fit ``module``.
    """
    result = module.load_state_dict(state, strict=strict)
    missing = unexpected_missing(module, result.missing_keys)
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"The checkpoint does not fit {type(module).__name__}: missing {missing[:10]}, "
            f"unexpected {list(result.unexpected_keys)[:10]} (an adapter model's checkpoint "
            "may lack only its frozen parameters). Load it into the model, with the same "
            "adapters, that wrote it."
        )
