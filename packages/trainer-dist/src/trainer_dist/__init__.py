"""The runtime: devices, processes, mixed precision and model wrapping (DDP, FSDP, DeepSpeed).

:func:`build_runtime` turns ``TrainingArguments`` into a :class:`trainer_core.Runtime`;
that is the :class:`SingleProcessRuntime` without a launcher (CPU, one GPU, MPS, or
DataParallel over the visible GPUs), the :class:`DistributedRuntime` (DDP) or the
:class:`FSDPRuntime` (torch's ``fully_shard``) under one, and the
:class:`DeepSpeedRuntime` (``deepspeed.initialize``, ZeRO 0-3) when DeepSpeed is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

from trainer_dist._batches import DeviceDataLoader, holds_tensor, move_to_device
from trainer_dist._connector import build_runtime, check_deepspeed_config
from trainer_dist._ddp import DDPOptions, DistributedRuntime
from trainer_dist._deepspeed_config import (
    ArgumentValues,
    DeepSpeedConfig,
    DeepSpeedConfigMismatchError,
    load_deepspeed_config,
)
from trainer_dist._fsdp import FSDPRuntime
from trainer_dist._fsdp_settings import FSDPSettings, parse_fsdp
from trainer_dist._launch_group import join_launched_group
from trainer_dist._models import unwrap_model
from trainer_dist._seed import enable_full_determinism, set_seed
from trainer_dist._sharding import ShardingOptions
from trainer_dist._single import SingleProcessRuntime
from trainer_dist._xla_settings import XlaFSDPSettings, parse_xla_fsdp
from trainer_dist._zero_init import register_zero3_init, wants_zero3_init, zero3_init_config

# Runtimes most runs never build: imported on first use (PEP 562), so that importing the
# package for the single-process or DDP runtime does not pay for them.
_LAZY = {
    "AcceleratorFacade": "trainer_dist._accelerator_facade",
    "DeepSpeedRuntime": "trainer_dist._deepspeed",
    "export_deepspeed_checkpoint": "trainer_dist._deepspeed_export",
    "XlaFSDPRuntime": "trainer_dist._xla",
    "consolidate_xla_fsdp_checkpoint": "trainer_dist._xla_shards",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainer_dist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AcceleratorFacade",
    "ArgumentValues",
    "DDPOptions",
    "DeepSpeedConfig",
    "DeepSpeedConfigMismatchError",
    "DeepSpeedRuntime",
    "DeviceDataLoader",
    "DistributedRuntime",
    "FSDPRuntime",
    "FSDPSettings",
    "ShardingOptions",
    "SingleProcessRuntime",
    "XlaFSDPRuntime",
    "XlaFSDPSettings",
    "build_runtime",
    "check_deepspeed_config",
    "consolidate_xla_fsdp_checkpoint",
    "enable_full_determinism",
    "export_deepspeed_checkpoint",
    "holds_tensor",
    "join_launched_group",
    "load_deepspeed_config",
    "move_to_device",
    "parse_fsdp",
    "parse_xla_fsdp",
    "register_zero3_init",
    "set_seed",
    "unwrap_model",
    "wants_zero3_init",
    "zero3_init_config",
]
