"""Model and optimizer state across wrappers and shards: full dicts and sharded folders.

Built on ``torch.distributed.checkpoint`` (DCP) and its ``state_dict`` helpers, which
understand plain modules, DDP and FSDP2 (``fully_shard``) alike: a *full* state dict is
gathered to plain tensors (keys without wrapper prefixes, the same on any number of
processes), a *sharded* one keeps each process's shards (``DTensor``) and is written as a
DCP folder that any number of processes, one included, can load back: DCP reshards on
load.

With a process group, every function here is a collective: all processes call it.
Without one (a single process), DCP runs locally.

Sharded folders use the reference's names inside a checkpoint: ``pytorch_model_fsdp_0``
for the model and ``optimizer_0`` for the optimizer. An adapter model's (PEFT) folder
holds its trainable parameters only, as the reference's ``adapter_only`` save does: its
frozen base weights are left as the model was built when it loads (``_adapter_models``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from trainer_dist._adapter_models import trains_adapters

logger = logging.getLogger(__name__)

MODEL_FOLDER = "pytorch_model_fsdp_0"
OPTIMIZER_FOLDER = "optimizer_0"


def _no_dist() -> bool:
    """True without a process group: DCP then reads and writes locally (saying so quietly)."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized())


@contextlib.contextmanager
def _quiet_single_process() -> Iterator[None]:
    """Silence DCP's warning that it runs without a process group: that is intended here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"torch\.distributed is disabled", category=UserWarning
        )
        yield


def _options(*, full: bool, broadcast: bool = False, adapters: bool = False) -> Any:
    """DCP's options; ``adapters``: the frozen parameters stay out (and may be absent
    when loading)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(
        full_state_dict=full,
        cpu_offload=full,
        broadcast_from_rank0=broadcast and full,
        ignore_frozen_params=adapters,
        strict=not adapters,
    )


def full_model_state(model: nn.Module, *, keep: bool = True) -> dict[str, Any]:
    """Every parameter and buffer of ``model`` as plain CPU tensors, gathered from shards.

    A collective: every process gathers each sharded tensor in turn (one full tensor at
    a time on the device), but only processes with ``keep`` copy it to the CPU and get
    the dict; the others get an empty one. The runtime keeps it on the main process of
    every node, the processes that write checkpoints (``save_on_each_node`` included).
    DCP's own ``cpu_offload`` gathering keeps it on global rank 0 only.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sharded = get_model_state_dict(model, options=_options(full=False))
    gathered = _gathered(sharded, keep)
    return gathered if keep else {}


def load_full_model_state(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a full state dict into ``model`` (each process keeps its shards of it).

    Every process must pass the complete dict (the checkpoint is read on each).
    """
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_options(full=True))


def full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, *, keep: bool = True
) -> dict[str, Any]:
    """The optimizer's state keyed by parameter names, gathered from shards.

    A collective, like :func:`full_model_state`: processes without ``keep`` get ``{}``.
    """
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    sharded = get_optimizer_state_dict(model, optimizer, options=_options(full=False))
    gathered = _gathered(sharded, keep)
    return gathered if keep else {}


def _gathered(value: Any, keep: bool) -> Any:
    """``value`` with every ``DTensor`` gathered into a full tensor (on the CPU if ``keep``).

    Containers are walked in order, which is the same on every process (the same model
    and optimizer), so the gathers of all processes pair up.
    """
    from torch.distributed.tensor import DTensor

    if isinstance(value, dict):
        return {key: _gathered(item, keep) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_gathered(item, keep) for item in value)
    if isinstance(value, DTensor):
        value = value.full_tensor()
    if isinstance(value, torch.Tensor) and keep:
        return value.detach().cpu()
    return value


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Load an optimizer state from :func:`full_optimizer_state` (every process passes it),
    or a plain ``optimizer.state_dict()`` (keyed by position: a checkpoint written without
    sharding, by one process or DDP), whose keys are first turned into parameter names."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    state = named_optimizer_state(model, optimizer, state)
    set_optimizer_state_dict(model, optimizer, state, options=_options(full=True))


_WRAPPER_NAME_PARTS = frozenset({"_checkpoint_wrapped_module", "_orig_mod", "_fsdp_wrapped_module"})
"""Module names wrappers (activation checkpointing, ``torch.compile``, FSDP1) insert in
parameter names, which torch's full optimizer state leaves out."""


def named_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> dict[str, Any]:
    """``state`` keyed by parameter name, as torch's full optimizer state is.

    A plain ``optimizer.state_dict()`` numbers the parameters in the order of the
    optimizer's groups; the Trainer builds the same groups in the same order with or
    without sharding, so position ``k`` of the saved state is the ``k``-th parameter of
    ``optimizer`` now. A state already keyed by name is returned as it is.

    Raises:
        ValueError: the saved groups do not have the sizes of the optimizer's (the
            checkpoint belongs to another model or another optimizer set-up).
    """
    groups = state.get("param_groups") or []
    if not any(isinstance(key, int) for group in groups for key in group.get("params", [])):
        return state
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    current = [list(group["params"]) for group in optimizer.param_groups]
    saved_sizes = [len(group["params"]) for group in groups]
    if saved_sizes != [len(params) for params in current]:
        raise ValueError(
            f"The checkpoint's optimizer state has parameter groups of sizes {saved_sizes}, "
            f"but this run's optimizer has {[len(params) for params in current]}: it was "
            "saved for another model or optimizer set-up. Resume with the arguments it "
            "was saved with, or start a new run from its weights."
        )
    by_position = [
        ".".join(part for part in names[id(p)].split(".") if part not in _WRAPPER_NAME_PARTS)
        for params in current
        for p in params
    ]
    saved_state = state.get("state", {})
    return {
        "state": {by_position[int(key)]: value for key, value in saved_state.items()},
        "param_groups": [
            {**group, "params": [by_position[int(key)] for key in group["params"]]}
            for group in groups
        ],
    }


def save_sharded(directory: str, model: nn.Module, optimizer: Any | None) -> None:
    """Write ``model`` (and ``optimizer``) as DCP folders under ``directory``; each process
    writes its own shards."""

    with _quiet_single_process():
        _save(directory, model, optimizer)


def _save(directory: str, model: nn.Module, optimizer: Any | None) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    options = _options(full=False, adapters=trains_adapters(model))
    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        model_state = get_model_state_dict(model, options=options)
    else:
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
        dcp.save(
            optimizer_state,
            checkpoint_id=os.path.join(directory, OPTIMIZER_FOLDER),
            no_dist=_no_dist(),
        )
    dcp.save(model_state, checkpoint_id=os.path.join(directory, MODEL_FOLDER), no_dist=_no_dist())


def load_sharded(directory: str, model: nn.Module, optimizer: Any | None) -> None:
    """Load folders written by :func:`save_sharded`, resharding to this group's size.

    Raises:
        FileNotFoundError: ``directory`` holds no sharded model folder.
    """
    model_dir = os.path.join(directory, MODEL_FOLDER)
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(
            f"No sharded model state in {directory!r}: expected the folder {MODEL_FOLDER}/ "
            f"written by save_sharded_state. Pass a checkpoint saved with a sharded state "
            f"dict, or load its full weights (model.safetensors) instead."
        )
    with _quiet_single_process():
        _load(model_dir, directory, model, optimizer)


def _load(model_dir: str, directory: str, model: nn.Module, optimizer: Any | None) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = _options(full=False, adapters=trains_adapters(model))
    model_state, optimizer_state = get_state_dict(
        model, optimizer if optimizer is not None else [], options=options
    )
    dcp.load(model_state, checkpoint_id=model_dir, no_dist=_no_dist())
    set_model_state_dict(model, model_state, options=options)
    if optimizer is not None and not os.path.isdir(os.path.join(directory, OPTIMIZER_FOLDER)):
        logger.warning(
            "%s holds no optimizer state (%s/; saved with save_only_model?): the optimizer "
            "starts afresh.",
            directory,
            OPTIMIZER_FOLDER,
        )
    elif optimizer is not None:
        dcp.load(
            optimizer_state,
            checkpoint_id=os.path.join(directory, OPTIMIZER_FOLDER),
            no_dist=_no_dist(),
        )
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=_options(full=False))
