"""The rules a finished TrainingArguments must satisfy, one small function per concern.

Each rule reads the normalised arguments (enums, lists and dicts already in place) and
raises an error that names the argument, the value passed, what is allowed and the fix.
``RULES`` lists them in the order they run; the Seq2Seq subclass adds its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainer_args._compile_backend import check_compile_backend
from trainer_args._enums import (
    APEX_OPT_LEVELS,
    DDP_BACKENDS,
    HALF_PRECISION_BACKENDS,
    MEMORY_SAVING_OPTIMIZERS,
    TRAINER_LOG_LEVELS,
    UNSUPPORTED_OPTIMIZERS,
    IntervalStrategy,
    SaveStrategy,
    SchedulerType,
)
from trainer_args._fsdp import check_fsdp
from trainer_args._messages import conflict, invalid, wrong_type
from trainer_args._steps import is_whole_multiple


@dataclass(frozen=True)
class Bound:
    """The allowed range of one numeric argument.

    Attributes:
        low: smallest allowed value (``None``: unbounded).
        high: largest allowed value (``None``: unbounded).
        integer: the value must be an ``int`` (``bool`` is refused).
        optional: ``None`` is allowed (the argument is then unset).
        high_open: ``high`` itself is excluded.
        low_open: ``low`` itself is excluded.
        note: what the bound means, appended to the error message.
    """

    low: float | None = None
    high: float | None = None
    integer: bool = False
    optional: bool = False
    high_open: bool = False
    low_open: bool = False
    note: str = ""

    def describe(self) -> str:
        """``"an integer >= 1"``, ``"a number in [0, 1)"``, ..."""
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{kind} in {left}{self.low}, {self.high}{right}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low}"
        else:
            text = kind
        return f"{text} or None" if self.optional else text

    def admits(self, value: float) -> bool:
        """Whether ``value`` (already known to be a number) lies within the bound."""
        if math.isnan(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        )


BOUNDS: dict[str, Bound] = {
    "per_device_train_batch_size": Bound(1, integer=True),
    "per_device_eval_batch_size": Bound(1, integer=True),
    "gradient_accumulation_steps": Bound(1, integer=True),
    "eval_accumulation_steps": Bound(1, integer=True, optional=True),
    "eval_delay": Bound(0, optional=True),
    "learning_rate": Bound(0),
    "weight_decay": Bound(0),
    "adam_beta1": Bound(0, 1, high_open=True),
    "adam_beta2": Bound(0, 1, high_open=True),
    "adam_epsilon": Bound(0),
    # transformers clips only when the value is positive: scripts pass 0 or -1 to turn it off.
    "max_grad_norm": Bound(optional=True, note="0, a negative number or None disables clipping"),
    "num_train_epochs": Bound(0),
    "max_steps": Bound(-1, integer=True, note="-1 trains for num_train_epochs instead"),
    "warmup_ratio": Bound(0, 1),
    "warmup_steps": Bound(0, note="a value below 1 is a share of the run"),
    "save_total_limit": Bound(
        integer=True, optional=True, note="None, 0 or a negative number keeps all"
    ),
    "seed": Bound(integer=True),
    "data_seed": Bound(integer=True, optional=True),
    "dataloader_num_workers": Bound(0, integer=True),
    "dataloader_prefetch_factor": Bound(1, integer=True, optional=True),
    "past_index": Bound(-1, integer=True, note="-1 disables it"),
    "label_smoothing_factor": Bound(0, 1, high_open=True),
    "tpu_num_cores": Bound(1, integer=True, optional=True),
    "ddp_timeout": Bound(1, integer=True, optional=True),
    "ddp_bucket_cap_mb": Bound(1, integer=True, optional=True),
    "torch_empty_cache_steps": Bound(1, integer=True, optional=True),
    "neftune_noise_alpha": Bound(0, low_open=True, optional=True),
    "local_rank": Bound(-1, integer=True, note="-1 means not launched by a launcher"),
}
"""Numeric arguments and their ranges. Step intervals (``logging_steps``, ...) are
checked by ``_steps.normalize_step_interval`` instead, because they accept fractions."""


def check_bound(name: str, value: Any, bound: Bound) -> None:
    """Raise unless ``value`` is a number of the right kind within ``bound``."""
    if value is None and bound.optional:
        return
    kinds = (int,) if bound.integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise wrong_type(name, value, bound.describe())
    if not bound.admits(value):
        note = f" ({bound.note})" if bound.note else ""
        raise invalid(name, value, bound.describe() + note, f"Set {name} within that range.")


def check_bounds(args: Any, bounds: Mapping[str, Bound] = BOUNDS) -> None:
    """Check every numeric argument listed in ``bounds``."""
    for name, bound in bounds.items():
        check_bound(name, getattr(args, name), bound)


def _check_choice(name: str, value: Any, allowed: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise invalid(name, value, f"one of {choices}" + (" or None" if optional else ""))


def check_names(args: Any) -> None:
    """Names from closed sets that are plain strings rather than enums."""
    _check_choice("log_level", args.log_level, TRAINER_LOG_LEVELS)
    _check_choice("log_level_replica", args.log_level_replica, TRAINER_LOG_LEVELS)
    _check_choice("ddp_backend", args.ddp_backend, DDP_BACKENDS, optional=True)
    _check_choice("half_precision_backend", args.half_precision_backend, HALF_PRECISION_BACKENDS)
    _check_choice("fp16_opt_level", args.fp16_opt_level, APEX_OPT_LEVELS)


def check_optimizer(args: Any) -> None:
    """GaLore, APOLLO and LOMO are names of the reference this trainer cannot run."""
    check_optimizer_name("optim", args.optim)


def check_optimizer_name(name: str, value: Any) -> None:
    """Refuse an optimizer name listed in ``UNSUPPORTED_OPTIMIZERS``, saying why."""
    optim = getattr(value, "value", value)
    reason = UNSUPPORTED_OPTIMIZERS.get(optim)
    if reason is not None:
        alternatives = ", ".join(repr(choice) for choice in MEMORY_SAVING_OPTIMIZERS)
        raise invalid(
            name,
            optim,
            "an optimizer this trainer supports",
            f"'{optim}' is not supported by this trainer: {reason}. Use 'adamw_torch', "
            f"or for less optimizer memory one of {alternatives}.",
        )


def check_strategy_steps(args: Any) -> None:
    """A ``"steps"`` strategy needs a positive interval."""
    pairs = (
        ("logging_strategy", args.logging_strategy, "logging_steps", args.logging_steps),
        ("save_strategy", args.save_strategy, "save_steps", args.save_steps),
        ("eval_strategy", args.eval_strategy, "eval_steps", args.eval_steps),
    )
    for strategy_name, strategy, steps_name, steps in pairs:
        if strategy == IntervalStrategy.STEPS and not steps:
            raise invalid(
                steps_name,
                steps,
                f"a number > 0 when {strategy_name}='steps'",
                f"Set {steps_name} (steps, or a fraction of the run below 1) or change "
                f"{strategy_name}.",
            )


def check_precision(args: Any) -> None:
    """float16 and bfloat16 exclude each other, for training and for full evaluation."""
    if args.fp16 and args.bf16:
        raise conflict("fp16", True, "bf16", True, "Choose one mixed-precision type.")
    if args.fp16_full_eval and args.bf16_full_eval:
        raise conflict(
            "fp16_full_eval", True, "bf16_full_eval", True, "Choose one half-precision type."
        )


def _check_save_multiple(args: Any) -> None:
    save, evaluate = args.save_steps, args.eval_steps
    if (save < 1) != (evaluate < 1):
        raise conflict(
            "save_steps",
            save,
            "eval_steps",
            evaluate,
            "With load_best_model_at_end both must be step counts or both fractions of the run.",
        )
    if not is_whole_multiple(save, evaluate):
        raise invalid(
            "save_steps",
            save,
            f"a whole multiple of eval_steps={evaluate!r} when load_best_model_at_end=True",
            "Every checkpoint must follow an evaluation; e.g. set save_steps equal to eval_steps.",
        )


def check_best_model(args: Any) -> None:
    """Keeping the best model needs evaluations, and checkpoints that follow them."""
    evaluation, save = args.eval_strategy, args.save_strategy
    if save == SaveStrategy.BEST and evaluation == IntervalStrategy.NO:
        raise invalid(
            "save_strategy",
            "best",
            "an evaluation strategy other than 'no'",
            "'best' saves when an evaluation improves; set eval_strategy='steps' or 'epoch'.",
        )
    if save == SaveStrategy.BEST and args.metric_for_best_model is None:
        raise invalid(
            "metric_for_best_model",
            None,
            "a metric name with save_strategy='best'",
            "'best' saves when that metric improves: name it, e.g. metric_for_best_model="
            "'loss' or 'accuracy' (a key compute_metrics returns, with or without 'eval_').",
        )
    if not args.load_best_model_at_end or save == SaveStrategy.BEST:
        return
    if evaluation == IntervalStrategy.NO:
        raise invalid(
            "load_best_model_at_end",
            True,
            "an evaluation strategy other than 'no'",
            "Set eval_strategy (and save_strategy) to 'steps' or 'epoch'.",
        )
    if evaluation.value != save.value:
        raise conflict(
            "eval_strategy",
            evaluation.value,
            "save_strategy",
            save.value,
            "load_best_model_at_end=True needs them equal (or save_strategy='best').",
        )
    if evaluation == IntervalStrategy.STEPS:
        _check_save_multiple(args)


def check_scheduler(args: Any) -> None:
    """``reduce_lr_on_plateau`` steps on evaluation metrics, so it needs evaluations."""
    if (
        args.lr_scheduler_type == SchedulerType.REDUCE_ON_PLATEAU
        and args.eval_strategy == IntervalStrategy.NO
    ):
        raise conflict(
            "lr_scheduler_type",
            "reduce_lr_on_plateau",
            "eval_strategy",
            "no",
            "That scheduler reacts to evaluation metrics; set eval_strategy='steps' or 'epoch'.",
        )


def check_dataloader(args: Any) -> None:
    """Prefetching and persistent workers only exist with worker processes."""
    if args.dataloader_num_workers == 0:
        if args.dataloader_prefetch_factor is not None:
            raise invalid(
                "dataloader_prefetch_factor",
                args.dataloader_prefetch_factor,
                "None when dataloader_num_workers=0",
                "Set dataloader_num_workers > 0 to prefetch in worker processes.",
            )
        if args.dataloader_persistent_workers:
            raise invalid(
                "dataloader_persistent_workers",
                True,
                "False when dataloader_num_workers=0",
                "Set dataloader_num_workers > 0 or drop dataloader_persistent_workers.",
            )


RULES = (
    check_bounds,
    check_names,
    check_optimizer,
    check_strategy_steps,
    check_precision,
    check_best_model,
    check_scheduler,
    check_dataloader,
    check_fsdp,
    check_compile_backend,
)
"""Every rule, in the order construction runs them."""
