"""The names of ``transformers.trainer_pt_utils`` we implement, under ``trainer``.

Subclasses that override ``evaluation_loop``, ``prediction_step`` or ``compute_loss``,
and scripts with their own loaders, import the nested-output helpers, the distributed
gathers and the samplers from this path. ``log_metrics``, ``metrics_format``,
``save_metrics`` and ``save_state`` are the functions the reference binds as Trainer
methods (they take the trainer as ``self``).
"""

from __future__ import annotations

from trainer_args import AcceleratorConfig
from trainer_loop import (
    DistributedLengthGroupedSampler,
    DistributedSamplerWithLoop,
    EvalLoopContainer,
    IterableDatasetShard,
    LabelSmoother,
    LengthGroupedSampler,
    SequentialDistributedSampler,
    ShardSampler,
    atleast_1d,
    distributed_broadcast_scalars,
    distributed_concat,
    find_batch_size,
    get_dataloader_sampler,
    get_length_grouped_indices,
    get_model_param_count,
    get_module_class_from_name,
    get_parameter_names,
    log_metrics,
    metrics_format,
    nested_concat,
    nested_detach,
    nested_numpify,
    nested_truncate,
    numpy_pad_and_concatenate,
    reissue_pt_warnings,
    save_metrics,
    save_state,
    torch_distributed_zero_first,
    torch_pad_and_concatenate,
)

__all__ = [
    "AcceleratorConfig",
    "DistributedLengthGroupedSampler",
    "DistributedSamplerWithLoop",
    "EvalLoopContainer",
    "IterableDatasetShard",
    "LabelSmoother",
    "LengthGroupedSampler",
    "SequentialDistributedSampler",
    "ShardSampler",
    "atleast_1d",
    "distributed_broadcast_scalars",
    "distributed_concat",
    "find_batch_size",
    "get_dataloader_sampler",
    "get_length_grouped_indices",
    "get_model_param_count",
    "get_module_class_from_name",
    "get_parameter_names",
    "log_metrics",
    "metrics_format",
    "nested_concat",
    "nested_detach",
    "nested_numpify",
    "nested_truncate",
    "numpy_pad_and_concatenate",
    "reissue_pt_warnings",
    "save_metrics",
    "save_state",
    "torch_distributed_zero_first",
    "torch_pad_and_concatenate",
]
