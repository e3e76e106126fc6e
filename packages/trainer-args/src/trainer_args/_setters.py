"""The ``set_*`` helpers: set a group of related arguments in one call, chainably.

Each method assigns its arguments, checks each value with the same rules construction
uses, and returns ``self`` so calls chain: ``args.set_training(...).set_evaluate(...)``.
Rules that relate two groups (``load_best_model_at_end`` needs matching evaluation and
save strategies) are not re-checked, so that the order of chained calls never matters.
"""

# The reference API lets callers pass these parameters positionally, so the signatures
# keep them positional.

from __future__ import annotations

import math
from typing import Any

from trainer_args._enums import (
    HubStrategy,
    IntervalStrategy,
    OptimizerNames,
    SaveStrategy,
    SchedulerType,
)
from trainer_args._messages import coerce_enum, conflict, invalid
from trainer_args._pipeline import fill_best_model, normalize_report_to
from trainer_args._steps import normalize_step_interval, normalize_warmup, warmup_share
from trainer_args._transformers5 import check_multiprocessing_context
from trainer_args._validation import (
    BOUNDS,
    check_bound,
    check_dataloader,
    check_names,
    check_optimizer_name,
)


def _check(args: Any, *names: str) -> None:
    for name in names:
        check_bound(name, getattr(args, name), BOUNDS[name])


def _interval(strategy_name: str, strategy: Any, steps_name: str, steps: float) -> float:
    """Check a (strategy, steps) pair given to a setter and return the stored steps."""
    if strategy == IntervalStrategy.STEPS and steps == 0:
        raise invalid(steps_name, steps, f"a number > 0 when {strategy_name}='steps'")
    return normalize_step_interval(steps_name, steps)


class SettersMixin:
    """The ``set_*`` methods and ``get_warmup_steps`` of TrainingArguments."""

    warmup_steps: int
    warmup_ratio: float

    def set_training(
        self,
        learning_rate: float = 5e-5,
        batch_size: int = 8,
        weight_decay: float = 0,
        num_epochs: float = 3,
        max_steps: int = -1,
        gradient_accumulation_steps: int = 1,
        seed: int = 42,
        gradient_checkpointing: bool = False,
        activation_checkpointing: bool | None = None,
    ) -> Any:
        """Set the basic training arguments and turn ``do_train`` on.

        ``batch_size`` is per device; ``max_steps`` > 0 overrides ``num_epochs``.
        ``activation_checkpointing`` is transformers 5's name for
        ``gradient_checkpointing``; when given, it decides.
        """
        if (
            activation_checkpointing is not None
            and gradient_checkpointing
            and not (activation_checkpointing)
        ):
            raise conflict(
                "activation_checkpointing",
                activation_checkpointing,
                "gradient_checkpointing",
                gradient_checkpointing,
                "They are two spellings of one setting: give only one of them.",
            )
        self.do_train = True
        self.learning_rate = learning_rate
        self.per_device_train_batch_size = batch_size
        self.weight_decay = weight_decay
        self.num_train_epochs = num_epochs
        self.max_steps = max_steps
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.seed = seed
        self.gradient_checkpointing = (
            gradient_checkpointing if activation_checkpointing is None else activation_checkpointing
        )
        _check(
            self,
            "learning_rate",
            "per_device_train_batch_size",
            "weight_decay",
            "num_train_epochs",
            "max_steps",
            "gradient_accumulation_steps",
            "seed",
        )
        return self

    def set_evaluate(
        self,
        strategy: str | IntervalStrategy = "no",
        steps: int = 500,
        batch_size: int = 8,
        accumulation_steps: int | None = None,
        delay: float | None = None,
        loss_only: bool = False,
        jit_mode: bool = False,
    ) -> Any:
        """Set the evaluation arguments; ``do_eval`` follows ``strategy != "no"``.

        ``steps`` is the interval for ``strategy="steps"`` (a float below 1 is a
        fraction of the run); ``delay`` postpones the first evaluation.
        """
        chosen = coerce_enum("strategy", strategy, IntervalStrategy)
        self.eval_steps = _interval("strategy", chosen, "steps", steps)
        self.eval_strategy = chosen  # also sets evaluation_strategy
        self.do_eval = chosen != IntervalStrategy.NO
        self.per_device_eval_batch_size = batch_size
        self.eval_accumulation_steps = accumulation_steps
        self.eval_delay = delay
        self.prediction_loss_only = loss_only
        self.jit_mode_eval = jit_mode
        _check(self, "per_device_eval_batch_size", "eval_accumulation_steps", "eval_delay")
        return self

    def set_testing(
        self, batch_size: int = 8, loss_only: bool = False, jit_mode: bool = False
    ) -> Any:
        """Set the prediction (test set) arguments and turn ``do_predict`` on."""
        self.do_predict = True
        self.per_device_eval_batch_size = batch_size
        self.prediction_loss_only = loss_only
        self.jit_mode_eval = jit_mode
        _check(self, "per_device_eval_batch_size")
        return self

    def set_save(
        self,
        strategy: str | SaveStrategy = "steps",
        steps: int = 500,
        total_limit: int | None = None,
        on_each_node: bool = False,
    ) -> Any:
        """Set the checkpoint arguments: when to save, how many to keep, where.

        ``strategy="best"`` defaults ``metric_for_best_model`` to the loss (a builder
        call names the strategy on purpose; constructing the arguments with
        ``save_strategy="best"`` and no metric is refused, as in transformers 5).
        """
        chosen = coerce_enum("strategy", strategy, SaveStrategy)
        self.save_steps = _interval("strategy", chosen, "steps", steps)
        self.save_strategy = chosen
        self.save_total_limit = total_limit
        self.save_on_each_node = on_each_node
        _check(self, "save_total_limit")
        if chosen == SaveStrategy.BEST and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"
        fill_best_model(self)
        return self

    def set_logging(
        self,
        strategy: str | IntervalStrategy = "steps",
        steps: int = 500,
        report_to: str | list[str] = "none",
        level: str = "passive",
        first_step: bool = False,
        nan_inf_filter: bool = False,
        on_each_node: bool = False,
        replica_level: str = "passive",
    ) -> Any:
        """Set the logging arguments: interval, reporters, levels of main and replicas."""
        chosen = coerce_enum("strategy", strategy, IntervalStrategy)
        self.logging_steps = _interval("strategy", chosen, "steps", steps)
        self.logging_strategy = chosen
        self.report_to = normalize_report_to(report_to)
        self.log_level = level
        self.logging_first_step = first_step
        self.logging_nan_inf_filter = nan_inf_filter
        self.log_on_each_node = on_each_node
        self.log_level_replica = replica_level
        check_names(self)
        return self

    def set_push_to_hub(
        self,
        model_id: str,
        strategy: str | HubStrategy = "every_save",
        token: str | None = None,
        private_repo: bool | None = None,
        always_push: bool = False,
        revision: str | None = None,
    ) -> Any:
        """Turn ``push_to_hub`` on and set the repository, strategy and credentials.

        ``private_repo=None`` (the default, as in transformers 5) leaves a new repository's
        visibility to the Hub: public unless the organisation's default is private.
        ``revision`` (transformers 5) is the branch, tag or commit pushed to; it comes
        last so that v4.34's positional calls keep their meaning.
        """
        self.push_to_hub = True
        self.hub_model_id = model_id
        self.hub_strategy = coerce_enum("strategy", strategy, HubStrategy)
        self.hub_token = token
        self.hub_private_repo = private_repo
        self.hub_always_push = always_push
        self.hub_revision = revision
        return self

    def set_optimizer(
        self,
        name: str | OptimizerNames = "adamw_torch",
        learning_rate: float = 5e-5,
        weight_decay: float = 0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        args: str | None = None,
    ) -> Any:
        """Set the optimizer and its hyperparameters (``args``: extra ``k=v,k=v``)."""
        optim = coerce_enum("name", name, OptimizerNames)
        check_optimizer_name("name", optim)
        self.optim = optim
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.adam_beta1 = beta1
        self.adam_beta2 = beta2
        self.adam_epsilon = epsilon
        self.optim_args = args
        _check(self, "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon")
        return self

    def set_lr_scheduler(
        self,
        name: str | SchedulerType = "linear",
        num_epochs: float = 3.0,
        max_steps: int = -1,
        warmup_ratio: float = 0,
        warmup_steps: float = 0,
    ) -> Any:
        """Set the learning-rate schedule and the run length it spans (a ``warmup_steps``
        below 1 is a share of the run, as in transformers 5, and is stored as given)."""
        self.lr_scheduler_type = coerce_enum("name", name, SchedulerType)
        self.num_train_epochs = num_epochs
        self.max_steps = max_steps
        self.warmup_ratio = warmup_ratio
        self.warmup_steps = warmup_steps
        normalize_warmup(self)
        _check(self, "num_train_epochs", "max_steps", "warmup_ratio", "warmup_steps")
        return self

    def set_dataloader(
        self,
        train_batch_size: int = 8,
        eval_batch_size: int = 8,
        drop_last: bool = False,
        num_workers: int = 0,
        pin_memory: bool = True,
        auto_find_batch_size: bool = False,
        ignore_data_skip: bool = False,
        sampler_seed: int | None = None,
        *,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        multiprocessing_context: str | None = None,
        in_order: bool = True,
    ) -> Any:
        """Set how batches are built: sizes, workers, pinning, resume and sampler seed.

        The worker options transformers 5 added (``persistent_workers``,
        ``prefetch_factor``, ``multiprocessing_context``, ``in_order``) are keyword-only,
        so that the v4.34 positional order stays; like every argument here, one left out
        returns to its default.
        """
        self.per_device_train_batch_size = train_batch_size
        self.per_device_eval_batch_size = eval_batch_size
        self.dataloader_drop_last = drop_last
        self.dataloader_num_workers = num_workers
        self.dataloader_pin_memory = pin_memory
        self.dataloader_persistent_workers = persistent_workers
        self.dataloader_prefetch_factor = prefetch_factor
        self.dataloader_multiprocessing_context = multiprocessing_context
        self.dataloader_in_order = in_order
        self.auto_find_batch_size = auto_find_batch_size
        self.ignore_data_skip = ignore_data_skip
        self.data_seed = sampler_seed
        _check(
            self,
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "dataloader_num_workers",
            "dataloader_prefetch_factor",
            "data_seed",
        )
        check_dataloader(self)
        check_multiprocessing_context(multiprocessing_context)
        return self

    def get_warmup_steps(self, num_training_steps: int) -> int:
        """Number of warm-up steps for a run of ``num_training_steps`` optimizer steps.

        ``warmup_steps`` when it is a step count >= 1, else ``ceil(share *
        num_training_steps)`` where the share is a ``warmup_steps`` below 1 (transformers
        5's spelling, kept as given) or else ``warmup_ratio`` (v4.34's).
        """
        if self.warmup_steps >= 1:
            return int(self.warmup_steps)
        return math.ceil(num_training_steps * warmup_share(self))
