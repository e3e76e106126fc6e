"""The names of ``transformers.trainer_utils``, at the same path under ``trainer``.

Nearly every example script imports ``get_last_checkpoint`` and ``set_seed`` from this
path; callbacks and subclasses import the output types, the strategy enums and
``PREFIX_CHECKPOINT_DIR`` (the ``checkpoint`` in ``checkpoint-500``) from it.
"""

from __future__ import annotations

from trainer_args import (
    FSDPOption,
    HubStrategy,
    IntervalStrategy,
    SaveStrategy,
    SchedulerType,
    ShardedDDPOption,
)
from trainer_checkpoint import CHECKPOINT_PREFIX as PREFIX_CHECKPOINT_DIR
from trainer_checkpoint import get_last_checkpoint
from trainer_core import (
    BestRun,
    EvalLoopOutput,
    EvalPrediction,
    HPSearchBackend,
    PredictionOutput,
    TrainOutput,
    default_compute_objective,
)
from trainer_dist import enable_full_determinism, set_seed
from trainer_hpsearch import default_hp_space_optuna, default_hp_space_ray, default_hp_space_sigopt
from trainer_loop import has_length, seed_worker, speed_metrics

__all__ = [
    "PREFIX_CHECKPOINT_DIR",
    "BestRun",
    "EvalLoopOutput",
    "EvalPrediction",
    "FSDPOption",
    "HPSearchBackend",
    "HubStrategy",
    "IntervalStrategy",
    "PredictionOutput",
    "SaveStrategy",
    "SchedulerType",
    "ShardedDDPOption",
    "TrainOutput",
    "default_compute_objective",
    "default_hp_space_optuna",
    "default_hp_space_ray",
    "default_hp_space_sigopt",
    "enable_full_determinism",
    "get_last_checkpoint",
    "has_length",
    "seed_worker",
    "set_seed",
    "speed_metrics",
]
