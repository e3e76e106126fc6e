"""checkpoint-<step> folders: crash-safe writes, discovery, rotation and loading.

:class:`FolderCheckpointStore` implements ``trainer_core.CheckpointStore`` (the port the
training loop depends on) in the reference Trainer's file format, so checkpoints move
between the two in both directions.
"""

from __future__ import annotations

from trainer_checkpoint._errors import (
    CheckpointNotFoundError,
    CheckpointSaveError,
    CorruptCheckpointError,
    NotACheckpointError,
    UnsafeCheckpointError,
)
from trainer_checkpoint._folders import (
    CHECKPOINT_PREFIX,
    SHARDED_STATE_NAME,
    TRAINER_STATE_NAME,
    checkpoint_name,
    get_last_checkpoint,
    has_sharded_state,
    incomplete_folders,
    is_complete,
    list_checkpoints,
    rotate_checkpoints,
)
from trainer_checkpoint._rng import capture_rng_state, restore_rng_state, rng_file_name
from trainer_checkpoint._safe_load import safe_load
from trainer_checkpoint._store import (
    OPTIMIZER_NAME,
    SCALER_NAME,
    SCHEDULER_NAME,
    TRAINING_ARGS_BIN_NAME,
    TRAINING_ARGS_NAME,
    FolderCheckpointStore,
    check_checkpoint,
)
from trainer_checkpoint._weights import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    load_weights,
    parse_size,
    read_weights,
    save_weights,
)

__all__ = [
    "CHECKPOINT_PREFIX",
    "OPTIMIZER_NAME",
    "SAFE_WEIGHTS_INDEX_NAME",
    "SAFE_WEIGHTS_NAME",
    "SCALER_NAME",
    "SCHEDULER_NAME",
    "SHARDED_STATE_NAME",
    "TRAINER_STATE_NAME",
    "TRAINING_ARGS_BIN_NAME",
    "TRAINING_ARGS_NAME",
    "WEIGHTS_INDEX_NAME",
    "WEIGHTS_NAME",
    "CheckpointNotFoundError",
    "CheckpointSaveError",
    "CorruptCheckpointError",
    "FolderCheckpointStore",
    "NotACheckpointError",
    "UnsafeCheckpointError",
    "capture_rng_state",
    "check_checkpoint",
    "checkpoint_name",
    "get_last_checkpoint",
    "has_sharded_state",
    "incomplete_folders",
    "is_complete",
    "list_checkpoints",
    "load_weights",
    "parse_size",
    "read_weights",
    "restore_rng_state",
    "rng_file_name",
    "rotate_checkpoints",
    "safe_load",
    "save_weights",
]
