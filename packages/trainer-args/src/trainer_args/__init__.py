"""TrainingArguments, Seq2SeqTrainingArguments and HfArgumentParser, importable without torch."""

from __future__ import annotations

from trainer_args._accelerator_config import AcceleratorConfig
from trainer_args._accumulation_kwargs import syncs_each_batch
from trainer_args._enums import (
    UNSUPPORTED_OPTIMIZERS,
    DebugOption,
    FSDPOption,
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    ParallelMode,
    SaveStrategy,
    SchedulerType,
    ShardedDDPOption,
)
from trainer_args._fsdp import FSDP_FLAG_KEYS
from trainer_args._fsdp_switches import (
    FSDP_SWITCH_KEYS,
    fsdp_flag,
    fsdp_option_words,
    merge_fsdp_switches,
)
from trainer_args._parser import HfArgumentParser
from trainer_args._seq2seq import Seq2SeqTrainingArguments
from trainer_args._steps import resolve_steps
from trainer_args._training_args import TrainingArguments

__all__: list[str] = [
    "FSDP_FLAG_KEYS",
    "FSDP_SWITCH_KEYS",
    "UNSUPPORTED_OPTIMIZERS",
    "AcceleratorConfig",
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
    "fsdp_flag",
    "fsdp_option_words",
    "merge_fsdp_switches",
    "resolve_steps",
    "syncs_each_batch",
]
