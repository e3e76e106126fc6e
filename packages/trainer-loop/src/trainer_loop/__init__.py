"""Trainer: the training, evaluation and prediction loops, optimizers and schedulers."""

from __future__ import annotations

from trainer_loop._adafactor import Adafactor, AdafactorSchedule, get_adafactor_schedule
from trainer_loop._batch_size_decorator import find_executable_batch_size_decorator
from trainer_loop._batch_size_finder import find_executable_batch_size
from trainer_loop._collators import DataCollatorWithPadding, default_data_collator
from trainer_loop._columns import (
    RemoveColumnsCollator,
    accepts_any_input,
    can_return_loss,
    default_label_names,
    model_input_names,
    remove_unused_columns,
)
from trainer_loop._dataloader_options import (
    WorkerSeeder,
    dataloader_kwargs,
    has_length,
    num_examples,
    seed_worker,
)
from trainer_loop._label_smoothing import LabelSmoother
from trainer_loop._module_queries import get_model_param_count, get_module_class_from_name
from trainer_loop._nested_helpers import (
    EvalLoopContainer,
    atleast_1d,
    find_batch_size,
    nested_concat,
    nested_detach,
    nested_numpify,
    nested_truncate,
    numpy_pad_and_concatenate,
    torch_pad_and_concatenate,
)
from trainer_loop._optimizers import (
    OPTIMIZER_NAMES,
    MissingOptimizerPackageError,
    create_optimizer,
    get_decay_parameter_names,
    get_optimizer_cls_and_kwargs,
    parse_optim_args,
)
from trainer_loop._parameter_names import ALL_LAYERNORM_LAYERS, get_parameter_names
from trainer_loop._process_helpers import (
    distributed_broadcast_scalars,
    distributed_concat,
    is_main_process,
    reissue_pt_warnings,
    torch_distributed_zero_first,
    total_processes_number,
)
from trainer_loop._reporters import resolve_reporters
from trainer_loop._samplers import (
    LengthGroupedSampler,
    SeekableRandomSampler,
    SeekableSequentialSampler,
    SortishSampler,
    build_eval_sampler,
    build_train_sampler,
    seeded_generator,
)
from trainer_loop._schedulers import (
    SCHEDULER_NAMES,
    TYPE_TO_SCHEDULER_FUNCTION,
    GreedyLR,
    create_scheduler,
    get_constant_schedule,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_cosine_with_hard_restarts_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup,
    get_cosine_with_min_lr_schedule_with_warmup_lr_rate,
    get_greedy_schedule,
    get_inverse_sqrt_schedule,
    get_linear_schedule_with_warmup,
    get_polynomial_decay_schedule_with_warmup,
    get_reduce_on_plateau_schedule,
    get_scheduler,
    get_wsd_schedule,
)
from trainer_loop._shard_samplers import (
    DistributedLengthGroupedSampler,
    DistributedSamplerWithLoop,
    IterableDatasetShard,
    SequentialDistributedSampler,
    ShardSampler,
    get_dataloader_sampler,
    get_length_grouped_indices,
)
from trainer_loop._speed_metrics import speed_metrics
from trainer_loop._trainer_functions import log_metrics, metrics_format, save_metrics, save_state
from trainer_loop._trainer_memory_tracker import TrainerMemoryTracker

__all__: list[str] = [
    "ALL_LAYERNORM_LAYERS",
    "OPTIMIZER_NAMES",
    "SCHEDULER_NAMES",
    "TYPE_TO_SCHEDULER_FUNCTION",
    "Adafactor",
    "AdafactorSchedule",
    "DataCollatorWithPadding",
    "DistributedLengthGroupedSampler",
    "DistributedSamplerWithLoop",
    "EvalLoopContainer",
    "GreedyLR",
    "IterableDatasetShard",
    "LabelSmoother",
    "LengthGroupedSampler",
    "MissingOptimizerPackageError",
    "RemoveColumnsCollator",
    "SeekableRandomSampler",
    "SeekableSequentialSampler",
    "Seq2SeqTrainer",
    "SequentialDistributedSampler",
    "ShardSampler",
    "SortishSampler",
    "Trainer",
    "TrainerMemoryTracker",
    "WorkerSeeder",
    "accepts_any_input",
    "atleast_1d",
    "build_eval_sampler",
    "build_train_sampler",
    "can_return_loss",
    "create_optimizer",
    "create_scheduler",
    "dataloader_kwargs",
    "default_data_collator",
    "default_label_names",
    "distributed_broadcast_scalars",
    "distributed_concat",
    "find_batch_size",
    "find_executable_batch_size",
    "find_executable_batch_size_decorator",
    "get_adafactor_schedule",
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
    "get_dataloader_sampler",
    "get_decay_parameter_names",
    "get_greedy_schedule",
    "get_inverse_sqrt_schedule",
    "get_length_grouped_indices",
    "get_linear_schedule_with_warmup",
    "get_model_param_count",
    "get_module_class_from_name",
    "get_optimizer_cls_and_kwargs",
    "get_parameter_names",
    "get_polynomial_decay_schedule_with_warmup",
    "get_reduce_on_plateau_schedule",
    "get_scheduler",
    "get_wsd_schedule",
    "has_length",
    "is_main_process",
    "log_metrics",
    "metrics_format",
    "model_input_names",
    "nested_concat",
    "nested_detach",
    "nested_numpify",
    "nested_truncate",
    "num_examples",
    "numpy_pad_and_concatenate",
    "parse_optim_args",
    "reissue_pt_warnings",
    "remove_unused_columns",
    "resolve_reporters",
    "save_metrics",
    "save_state",
    "seed_worker",
    "seeded_generator",
    "speed_metrics",
    "torch_distributed_zero_first",
    "torch_pad_and_concatenate",
    "total_processes_number",
]

# The Trainer (and its Seq2Seq subclass) builds on every helper above: imported last.
from trainer_loop._seq2seq import Seq2SeqTrainer
from trainer_loop._trainer import Trainer
