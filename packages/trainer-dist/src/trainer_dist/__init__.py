"""The runtime: devices, processes, mixed precision and model wrapping (DDP, FSDP, DeepSpeed).

:func:`build_runtime` turns ``TrainingArguments`` into a :class:`trainer_core.Runtime`;
that is the :class:`SingleProcessRuntime` without a launcher (CPU, one GPU, MPS, or
DataParallel over the visible GPUs), the :class:`DistributedRuntime` (DDP) or the
:class:`FSDPRuntime` (torch's ``fully_shard``) under one.
"""

from __future__ import annotations

from trainer_dist._batches import DeviceDataLoader, move_to_device
from trainer_dist._connector import build_runtime
from trainer_dist._ddp import DDPOptions, DistributedRuntime
from trainer_dist._fsdp import FSDPRuntime
from trainer_dist._fsdp_settings import FSDPSettings, parse_fsdp
from trainer_dist._models import unwrap_model
from trainer_dist._seed import enable_full_determinism, set_seed
from trainer_dist._single import SingleProcessRuntime

__all__ = [
    "DDPOptions",
    "DeviceDataLoader",
    "DistributedRuntime",
    "FSDPRuntime",
    "FSDPSettings",
    "SingleProcessRuntime",
    "build_runtime",
    "enable_full_determinism",
    "move_to_device",
    "parse_fsdp",
    "set_seed",
    "unwrap_model",
]
