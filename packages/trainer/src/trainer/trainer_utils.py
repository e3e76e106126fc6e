"""The names of ``transformers.trainer_utils``, at the same path under ``trainer``.

Nearly every example script imports ``get_last_checkpoint`` and ``set_seed`` from this
path; callbacks and subclasses import the output types, the strategy enums and
``PREFIX_CHECKPOINT_DIR`` (the ``checkpoint`` in ``checkpoint-500``) from it; subclasses
that copy the reference's ``train`` / ``evaluate`` import ``TrainerMemoryTracker``,
``denumpify_detensorize`` and ``RemoveColumnsCollator``.
``EvaluationStrategy`` is v4's deprecated name of ``IntervalStrategy``: here the same
enum, so its members compare equal to the strings and to ``IntervalStrategy``'s.
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
    denumpify_detensorize,
    number_of_arguments,
)
from trainer_dist import enable_full_determinism, set_seed
from trainer_hpsearch import default_hp_space_optuna, default_hp_space_ray, default_hp_space_sigopt
from trainer_loop import (
    RemoveColumnsCollator,
    TrainerMemoryTracker,
    has_length,
    is_main_process,
    seed_worker,
    speed_metrics,
    total_processes_number,
)
from trainer_loop import find_executable_batch_size_decorator as find_executable_batch_size

EvaluationStrategy = IntervalStrategy

__all__ = [
    "PREFIX_CHECKPOINT_DIR",
    "BestRun",
    "EvalLoopOutput",
    "EvalPrediction",
    "EvaluationStrategy",
    "FSDPOption",
    "HPSearchBackend",
    "HubStrategy",
    "IntervalStrategy",
    "PredictionOutput",
    "RemoveColumnsCollator",
    "SaveStrategy",
    "SchedulerType",
    "ShardedDDPOption",
    "TrainOutput",
    "TrainerMemoryTracker",
    "default_compute_objective",
    "default_hp_space_optuna",
    "default_hp_space_ray",
    "default_hp_space_sigopt",
    "denumpify_detensorize",
    "enable_full_determinism",
    "find_executable_batch_size",
    "get_last_checkpoint",
    "has_length",
    "is_main_process",
    "number_of_arguments",
    "seed_worker",
    "set_seed",
    "speed_metrics",
    "total_processes_number",
]
