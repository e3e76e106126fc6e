"""The names of ``transformers.trainer``, at the same path under ``trainer``.

Besides the class, subclasses and checkpoint tools read the file names a checkpoint
folder holds from this module (``TRAINER_STATE_NAME``, ``TRAINING_ARGS_NAME``, ...); the
values are the reference's, and our checkpoints use them. ``create_optimizer`` overrides build their
weight-decay groups with ``get_parameter_names(model, ALL_LAYERNORM_LAYERS)``.
"""

from __future__ import annotations

from trainer_checkpoint import CHECKPOINT_PREFIX as PREFIX_CHECKPOINT_DIR
from trainer_checkpoint import (
    OPTIMIZER_NAME,
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    SCALER_NAME,
    SCHEDULER_NAME,
    TRAINER_STATE_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)
from trainer_checkpoint import TRAINING_ARGS_BIN_NAME as TRAINING_ARGS_NAME
from trainer_loop import ALL_LAYERNORM_LAYERS, Trainer, get_parameter_names

__all__ = [
    "ALL_LAYERNORM_LAYERS",
    "OPTIMIZER_NAME",
    "PREFIX_CHECKPOINT_DIR",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "SCALER_NAME",
    "SCHEDULER_NAME",
    "TRAINER_STATE_NAME",
    "TRAINING_ARGS_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "Trainer",
    "get_parameter_names",
]
