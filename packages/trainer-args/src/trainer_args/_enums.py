"""The closed sets of names that TrainingArguments accepts, as string enums.

Each enum subclasses ``str`` so that a member compares equal to the string users write
(``args.eval_strategy == "steps"``), serialises to JSON as that string, and prints as
that string. An unknown name raises a ``ValueError`` that lists every accepted value.
"""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):
    """A ``str`` enum whose ``str()``, ``format()`` and ``repr()`` are the plain value.

    The quoted-value ``repr`` keeps ``repr(args)`` valid Python that rebuilds the same
    object, and makes ``>>> args.optim`` print ``'adamw_torch'`` as the reference shows.
    """

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)

    def __repr__(self) -> str:
        return repr(self.value)

    @classmethod
    def _missing_(cls, value: object) -> None:
        allowed = ", ".join(repr(member.value) for member in cls)
        raise ValueError(f"{value!r} is not a valid {cls.__name__}; choose one of: {allowed}")

    @classmethod
    def values(cls) -> list[str]:
        """Every accepted value, in declaration order (for help texts and error messages)."""
        return [member.value for member in cls]


class IntervalStrategy(_StrEnum):
    """When an action (evaluation, logging) happens during training."""

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"


class SaveStrategy(_StrEnum):
    """When checkpoints are written: the interval strategies plus ``"best"``.

    ``"best"`` writes a checkpoint whenever an evaluation improves
    ``metric_for_best_model``.
    """

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"
    BEST = "best"


class SchedulerType(_StrEnum):
    """Learning-rate schedules the training loop knows how to build.

    ``cosine_warmup_with_min_lr`` and ``greedy`` come from transformers 5, in its order;
    ``greedy`` (like ``reduce_lr_on_plateau``) steps on evaluation metrics.
    """

    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"
    INVERSE_SQRT = "inverse_sqrt"
    REDUCE_ON_PLATEAU = "reduce_lr_on_plateau"
    COSINE_WITH_MIN_LR = "cosine_with_min_lr"
    COSINE_WARMUP_WITH_MIN_LR = "cosine_warmup_with_min_lr"
    WARMUP_STABLE_DECAY = "warmup_stable_decay"
    GREEDY = "greedy"


class OptimizerNames(_StrEnum):
    """Optimizer names: those of the v4.34 API and the ones later releases added.

    Every name of the reference is a member, so that its configurations parse; but
    ``TrainingArguments`` refuses the :data:`UNSUPPORTED_OPTIMIZERS` at construction.
    Whether a supported optimizer can be built (it may need bitsandbytes, apex, ...) is
    decided by the training loop when it creates the optimizer.
    """

    ADAMW_HF = "adamw_hf"
    ADAMW_TORCH = "adamw_torch"
    ADAMW_TORCH_FUSED = "adamw_torch_fused"
    ADAMW_TORCH_XLA = "adamw_torch_xla"
    ADAMW_TORCH_NPU_FUSED = "adamw_torch_npu_fused"
    ADAMW_APEX_FUSED = "adamw_apex_fused"
    ADAFACTOR = "adafactor"
    ADAMW_ANYPRECISION = "adamw_anyprecision"
    ADAMW_TORCH_4BIT = "adamw_torch_4bit"
    ADAMW_TORCH_8BIT = "adamw_torch_8bit"
    ADEMAMIX = "ademamix"
    SGD = "sgd"
    ADAGRAD = "adagrad"
    ADAMW_BNB = "adamw_bnb_8bit"
    ADAMW_8BIT = "adamw_8bit"
    ADEMAMIX_8BIT = "ademamix_8bit"
    LION_8BIT = "lion_8bit"
    LION = "lion_32bit"
    PAGED_ADAMW = "paged_adamw_32bit"
    PAGED_ADAMW_8BIT = "paged_adamw_8bit"
    PAGED_ADEMAMIX = "paged_ademamix_32bit"
    PAGED_ADEMAMIX_8BIT = "paged_ademamix_8bit"
    PAGED_LION = "paged_lion_32bit"
    PAGED_LION_8BIT = "paged_lion_8bit"
    RMSPROP = "rmsprop"
    RMSPROP_BNB = "rmsprop_bnb"
    RMSPROP_8BIT = "rmsprop_bnb_8bit"
    RMSPROP_32BIT = "rmsprop_bnb_32bit"
    GALORE_ADAMW = "galore_adamw"
    GALORE_ADAMW_8BIT = "galore_adamw_8bit"
    GALORE_ADAFACTOR = "galore_adafactor"
    GALORE_ADAMW_LAYERWISE = "galore_adamw_layerwise"
    GALORE_ADAMW_8BIT_LAYERWISE = "galore_adamw_8bit_layerwise"
    GALORE_ADAFACTOR_LAYERWISE = "galore_adafactor_layerwise"
    LOMO = "lomo"
    ADALOMO = "adalomo"
    GROKADAMW = "grokadamw"
    SCHEDULE_FREE_RADAM = "schedule_free_radam"
    SCHEDULE_FREE_ADAMW = "schedule_free_adamw"
    SCHEDULE_FREE_SGD = "schedule_free_sgd"
    APOLLO_ADAMW = "apollo_adamw"
    APOLLO_ADAMW_LAYERWISE = "apollo_adamw_layerwise"
    STABLE_ADAMW = "stable_adamw"


_PROJECTED = "it needs low-rank projected parameter groups built from optim_target_modules"
_LAYERWISE = f"{_PROJECTED}, updated layer by layer from gradient hooks"
_FUSED_BACKWARD = "it updates the parameters inside its own fused backward pass"

UNSUPPORTED_OPTIMIZERS: dict[str, str] = {
    "galore_adamw": _PROJECTED,
    "galore_adamw_8bit": _PROJECTED,
    "galore_adafactor": _PROJECTED,
    "galore_adamw_layerwise": _LAYERWISE,
    "galore_adamw_8bit_layerwise": _LAYERWISE,
    "galore_adafactor_layerwise": _LAYERWISE,
    "apollo_adamw": _PROJECTED,
    "apollo_adamw_layerwise": _LAYERWISE,
    "lomo": _FUSED_BACKWARD,
    "adalomo": _FUSED_BACKWARD,
}
"""``OptimizerNames`` values this trainer refuses (GaLore, APOLLO, LOMO), with the reason:
each needs a training loop built around it, which the v4.34 API this trainer follows
does not have."""

MEMORY_SAVING_OPTIMIZERS = ("adamw_8bit", "adamw_torch_8bit", "adafactor")
"""What to suggest instead: optimizers with smaller state that this trainer runs."""


class HubStrategy(_StrEnum):
    """What is pushed to the Hub, and when, while ``push_to_hub`` is on."""

    END = "end"
    EVERY_SAVE = "every_save"
    CHECKPOINT = "checkpoint"
    ALL_CHECKPOINTS = "all_checkpoints"


class FSDPOption(_StrEnum):
    """Words of the ``fsdp`` argument: one sharding strategy plus optional modifiers."""

    FULL_SHARD = "full_shard"
    SHARD_GRAD_OP = "shard_grad_op"
    NO_SHARD = "no_shard"
    HYBRID_SHARD = "hybrid_shard"
    HYBRID_SHARD_ZERO2 = "hybrid_shard_zero2"
    OFFLOAD = "offload"
    AUTO_WRAP = "auto_wrap"


FSDP_SHARDING_STRATEGIES = frozenset(
    {
        FSDPOption.FULL_SHARD,
        FSDPOption.SHARD_GRAD_OP,
        FSDPOption.NO_SHARD,
        FSDPOption.HYBRID_SHARD,
        FSDPOption.HYBRID_SHARD_ZERO2,
    }
)
"""The FSDP words that choose how to shard; at most one may be given."""


class DebugOption(_StrEnum):
    """Words of the ``debug`` argument."""

    UNDERFLOW_OVERFLOW = "underflow_overflow"
    TPU_METRICS_DEBUG = "tpu_metrics_debug"


class ShardedDDPOption(_StrEnum):
    """Words of the removed ``sharded_ddp`` argument (FairScale).

    Kept so that the type of ``sharded_ddp`` matches the reference; any non-empty value
    is rejected with a message that gives the ``fsdp`` value to use instead.
    """

    SIMPLE = "simple"
    ZERO_DP_2 = "zero_dp_2"
    ZERO_DP_3 = "zero_dp_3"
    OFFLOAD = "offload"
    AUTO_WRAP = "auto_wrap"


class ParallelMode(_StrEnum):
    """How the current process takes part in training (see ``TrainingArguments.parallel_mode``).

    - ``not_parallel``: one process, at most one accelerator.
    - ``not_distributed``: one process driving several GPUs (``torch.nn.DataParallel``).
    - ``distributed``: several processes started by a launcher (DDP, FSDP, DeepSpeed).
    - ``sagemaker_model_parallel`` / ``sagemaker_data_parallel``: SageMaker's libraries.
    - ``tpu``: a TPU runtime.
    """

    NOT_PARALLEL = "not_parallel"
    NOT_DISTRIBUTED = "not_distributed"
    DISTRIBUTED = "distributed"
    SAGEMAKER_MODEL_PARALLEL = "sagemaker_model_parallel"
    SAGEMAKER_DATA_PARALLEL = "sagemaker_data_parallel"
    TPU = "tpu"


TRAINER_LOG_LEVELS: dict[str, int] = {
    "detail": 10,
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
    "passive": -1,
}
"""``log_level`` names and the ``logging`` levels they stand for (``logging.DEBUG`` is 10,
...); ``"passive"`` (-1) leaves the current level alone. Numbers rather than ``logging``
constants keep this module free of imports."""

DDP_BACKENDS: tuple[str, ...] = ("nccl", "gloo", "mpi", "ccl", "xccl", "hccl", "cncl", "mccl")
"""``ddp_backend`` values: torch.distributed backends and vendor ones (Intel, Ascend,
Cambricon, Moore Threads)."""

HALF_PRECISION_BACKENDS: tuple[str, ...] = ("auto", "apex", "cpu_amp")
"""``half_precision_backend`` values."""

APEX_OPT_LEVELS: tuple[str, ...] = ("O0", "O1", "O2", "O3")
"""``fp16_opt_level`` values (Apex AMP)."""
