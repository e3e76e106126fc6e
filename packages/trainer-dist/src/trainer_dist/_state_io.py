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
for the model and ``optimizer_0`` for the optimizer.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

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


def _options(*, full: bool, broadcast: bool = False) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(
        full_state_dict=full, cpu_offload=full, broadcast_from_rank0=broadcast and full
    )


def full_model_state(model: nn.Module) -> dict[str, Any]:
    """Every parameter and buffer of ``model`` as plain CPU tensors, gathered from shards.

    With ``cpu_offload`` DCP keeps the gathered values on rank 0 only: other processes get
    an empty dict, which is all they need since only the main process writes weights.
    """
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(full=True))


def load_full_model_state(model: nn.Module, state: dict[str, Any]) -> None:
    """Load a full state dict into ``model`` (each process keeps its shards of it).

    Every process must pass the complete dict (the checkpoint is read on each).
    """
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_options(full=True))


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state keyed by parameter names, gathered from shards (rank 0 holds it)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(full=True))


def load_full_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Load an optimizer state from :func:`full_optimizer_state` (every process passes it)."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_options(full=True))


def save_sharded(directory: str, model: nn.Module, optimizer: Any | None) -> None:
    """Write ``model`` (and ``optimizer``) as DCP folders under ``directory``; each process
    writes its own shards."""

    with _quiet_single_process():
        _save(directory, model, optimizer)


def _save(directory: str, model: nn.Module, optimizer: Any | None) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    if optimizer is None:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        model_state = get_model_state_dict(model, options=_options(full=False))
    else:
        model_state, optimizer_state = get_state_dict(
            model, optimizer, options=_options(full=False)
        )
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

    model_state, optimizer_state = get_state_dict(
        model, optimizer if optimizer is not None else [], options=_options(full=False)
    )
    dcp.load(model_state, checkpoint_id=model_dir, no_dist=_no_dist())
    set_model_state_dict(model, model_state, options=_options(full=False))
    if optimizer is not None:
        dcp.load(
            optimizer_state,
            checkpoint_id=os.path.join(directory, OPTIMIZER_FOLDER),
            no_dist=_no_dist(),
        )
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=_options(full=False))
