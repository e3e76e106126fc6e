"""Getting a process ready for DeepSpeed before its engine or communication starts.

Shared by the runtime and by the ZeRO-3 ``zero.Init`` registration (which may start the
process group while the arguments are built): importing deepspeed with a clear error
when the extra is missing, and, on CPU runs, refusing config optimizers that exist only
as compiled kernels and keeping DeepSpeed from compiling its shared-memory all-reduce.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from trainer_core import import_optional
from trainer_dist._deepspeed_config import DeepSpeedConfig

logger = logging.getLogger(__name__)

# Config optimizers that DeepSpeed only has as compiled kernels (FusedLamb, FusedLion, Muon).
_COMPILED_ONLY_OPTIMIZERS = frozenset(("lamb", "lion", "muon"))
_SHARED_MEMORY_OP = "deepspeed_shm_comm"


def import_deepspeed() -> Any:
    """``import deepspeed``, or :class:`trainer_core.MissingExtraError` naming the extra."""
    return import_optional(
        "deepspeed", package="trainer-dist", extra="deepspeed", feature="DeepSpeed (deepspeed=...)"
    )


def prepare_deepspeed_process(config: DeepSpeedConfig, *, use_cpu: bool) -> bool:
    """Get this process ready for DeepSpeed to start its communication; return whether
    DeepSpeed runs on the CPU.

    Shared by the runtime and the ZeRO-3 ``zero.Init`` registration (which may start the
    group first): imports deepspeed, refuses compiled-only optimizers and keeps the
    shared-memory all-reduce from compiling on the CPU, and describes a group of one
    process when no launcher did.

    Raises:
        trainer_core.MissingExtraError: deepspeed is not installed.
        ValueError: ``use_cpu`` on a GPU machine, or a config optimizer that needs a
            compiled kernel on the CPU.
    """
    deepspeed = import_deepspeed()
    on_cpu = _deepspeed_on_cpu(deepspeed, use_cpu=use_cpu)
    if on_cpu:
        _check_cpu_optimizer(config)
        _disable_shared_memory_op(deepspeed)
    _ensure_process_group_environment()
    return on_cpu


def _check_cpu_optimizer(config: DeepSpeedConfig) -> None:
    name = str(config.get("optimizer.type", "")).lower()
    if name in _COMPILED_ONLY_OPTIMIZERS:
        raise ValueError(
            f"The DeepSpeed config's optimizer type {config.get('optimizer.type')!r} exists "
            f"only as a compiled kernel, which DeepSpeed would build for minutes on this CPU "
            f"run. Use type 'AdamW', 'Adam' or 'Adagrad' (or a torch.optim class name such as "
            f"'SGD'), or remove the optimizer section to use the Trainer's optimizer (optim=)."
        )


def _deepspeed_on_cpu(deepspeed: Any, *, use_cpu: bool) -> bool:
    device_type = deepspeed.get_accelerator().device_name()
    if use_cpu and device_type != "cpu":
        raise ValueError(
            f"use_cpu=True, but DeepSpeed runs on this machine's {device_type} accelerator. "
            f"Unset use_cpu, or set DS_ACCELERATOR=cpu and hide the GPUs "
            f"(CUDA_VISIBLE_DEVICES=) to train DeepSpeed on the CPU."
        )
    return device_type == "cpu"


def _disable_shared_memory_op(deepspeed: Any) -> None:
    """Keep DeepSpeed from compiling its shared-memory all-reduce on CPU runs (a C++
    build of minutes on first use); gloo carries the collectives instead.

    DeepSpeed documents its ``__compatible_ops__`` table as editable: it is probed once,
    and the edit lasts for the process.
    """
    compatible = deepspeed.ops.__compatible_ops__
    if compatible.get(_SHARED_MEMORY_OP):
        compatible[_SHARED_MEMORY_OP] = False


def _ensure_process_group_environment() -> None:
    """Without a launcher, describe a group of one process (as the reference's notebook
    instructions do) so that DeepSpeed can start; a launcher's variables are kept."""
    if any(os.environ.get(name) for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE")):
        return
    os.environ.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"})
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    logger.info("deepspeed without a launcher: training as a group of one process.")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
