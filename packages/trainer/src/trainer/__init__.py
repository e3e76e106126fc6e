"""The documented Trainer API in one import.

``from trainer import Trainer, TrainingArguments`` is all a user of the reference API
needs to change. Names are resolved lazily (PEP 562): ``from trainer import
TrainingArguments`` loads only the torch-free argument package, and the training loop
(and torch) is imported the first time ``Trainer`` or another torch-backed name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "trainer_args": (
        "DebugOption",
        "FSDPOption",
        "HfArgumentParser",
        "HubStrategy",
        "IntervalStrategy",
        "OptimizerNames",
        "ParallelMode",
        "SaveStrategy",
        "SchedulerType",
        "Seq2SeqTrainingArguments",
        "ShardedDDPOption",
        "TrainingArguments",
    ),
    "trainer_core": (
        "BestRun",
        "CallbackHandler",
        "DefaultFlowCallback",
        "EarlyStoppingCallback",
        "EvalLoopOutput",
        "EvalPrediction",
        "HPSearchBackend",
        "MissingExtraError",
        "PredictionOutput",
        "PrinterCallback",
        "ProgressCallback",
        "TrainerCallback",
        "TrainerControl",
        "TrainerState",
        "TrainOutput",
        "UnknownPluginError",
        "default_compute_objective",
    ),
    "trainer_checkpoint": ("get_last_checkpoint",),
    "trainer_hpsearch": (
        "default_hp_space_optuna",
        "default_hp_space_ray",
        "default_hp_space_sigopt",
    ),
    "trainer_reporting": (
        "HubAccessError",
        "MLflowCallback",
        "TensorBoardCallback",
        "WandbCallback",
        "rewrite_logs",
    ),
    "trainer_dist": ("enable_full_determinism", "set_seed"),
    "trainer_loop": (
        "Adafactor",
        "AdafactorSchedule",
        "DataCollatorWithPadding",
        "LabelSmoother",
        "LengthGroupedSampler",
        "Seq2SeqTrainer",
        "SortishSampler",
        "Trainer",
        "default_data_collator",
        "get_constant_schedule",
        "get_constant_schedule_with_warmup",
        "get_cosine_schedule_with_warmup",
        "get_cosine_with_hard_restarts_schedule_with_warmup",
        "get_cosine_with_min_lr_schedule_with_warmup",
        "get_inverse_sqrt_schedule",
        "get_linear_schedule_with_warmup",
        "get_polynomial_decay_schedule_with_warmup",
        "get_reduce_on_plateau_schedule",
        "get_scheduler",
        "get_wsd_schedule",
    ),
}

_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "Adafactor",
    "AdafactorSchedule",
    "BestRun",
    "CallbackHandler",
    "DataCollatorWithPadding",
    "DebugOption",
    "DefaultFlowCallback",
    "EarlyStoppingCallback",
    "EvalLoopOutput",
    "EvalPrediction",
    "FSDPOption",
    "HPSearchBackend",
    "HfArgumentParser",
    "HubAccessError",
    "HubStrategy",
    "IntervalStrategy",
    "LabelSmoother",
    "LengthGroupedSampler",
    "MLflowCallback",
    "MissingExtraError",
    "OptimizerNames",
    "ParallelMode",
    "PredictionOutput",
    "PrinterCallback",
    "ProgressCallback",
    "SaveStrategy",
    "SchedulerType",
    "Seq2SeqTrainer",
    "Seq2SeqTrainingArguments",
    "ShardedDDPOption",
    "SortishSampler",
    "TensorBoardCallback",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "UnknownPluginError",
    "WandbCallback",
    "default_compute_objective",
    "default_data_collator",
    "default_hp_space_optuna",
    "default_hp_space_ray",
    "default_hp_space_sigopt",
    "enable_full_determinism",
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup",
    "get_inverse_sqrt_schedule",
    "get_last_checkpoint",
    "get_linear_schedule_with_warmup",
    "get_polynomial_decay_schedule_with_warmup",
    "get_reduce_on_plateau_schedule",
    "get_scheduler",
    "get_wsd_schedule",
    "rewrite_logs",
    "set_seed",
]


_SUBMODULES = frozenset(
    {
        "debug_utils",
        "hf_argparser",
        "integrations",
        "optimization",
        "trainer",
        "trainer_callback",
        "trainer_pt_utils",
        "trainer_seq2seq",
        "trainer_utils",
        "training_args",
        "training_args_seq2seq",
    }
)
"""Modules named after the reference's module paths (``transformers.trainer_utils`` ->
``trainer.trainer_utils``), so that import lines change by the package name alone."""


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


if TYPE_CHECKING:
    from trainer_args import (
        DebugOption,
        FSDPOption,
        HfArgumentParser,
        HubStrategy,
        IntervalStrategy,
        OptimizerNames,
        ParallelMode,
        SaveStrategy,
        SchedulerType,
        Seq2SeqTrainingArguments,
        ShardedDDPOption,
        TrainingArguments,
    )
    from trainer_checkpoint import get_last_checkpoint
    from trainer_core import (
        BestRun,
        CallbackHandler,
        DefaultFlowCallback,
        EarlyStoppingCallback,
        EvalLoopOutput,
        EvalPrediction,
        HPSearchBackend,
        MissingExtraError,
        PredictionOutput,
        PrinterCallback,
        ProgressCallback,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainOutput,
        UnknownPluginError,
        default_compute_objective,
    )
    from trainer_dist import enable_full_determinism, set_seed
    from trainer_hpsearch import (
        default_hp_space_optuna,
        default_hp_space_ray,
        default_hp_space_sigopt,
    )
    from trainer_loop import (
        Adafactor,
        AdafactorSchedule,
        DataCollatorWithPadding,
        LabelSmoother,
        LengthGroupedSampler,
        Seq2SeqTrainer,
        SortishSampler,
        Trainer,
        default_data_collator,
        get_constant_schedule,
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_cosine_with_hard_restarts_schedule_with_warmup,
        get_cosine_with_min_lr_schedule_with_warmup,
        get_inverse_sqrt_schedule,
        get_linear_schedule_with_warmup,
        get_polynomial_decay_schedule_with_warmup,
        get_reduce_on_plateau_schedule,
        get_scheduler,
        get_wsd_schedule,
    )
    from trainer_reporting import (
        HubAccessError,
        MLflowCallback,
        TensorBoardCallback,
        WandbCallback,
        rewrite_logs,
    )
