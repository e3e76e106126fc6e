"""Learning-rate schedules: one factory per ``SchedulerType`` and the dispatch by name.

Every schedule except ``reduce_lr_on_plateau`` and ``greedy`` (which follow an evaluation
metric rather than the step count) is a ``torch.optim.lr_scheduler.LambdaLR``
whose multiplier is a module-level function bound with ``functools.partial``. That
matters for checkpoints: such a scheduler pickles, and its ``state_dict()`` holds only
plain data, so ``scheduler.pt`` loads with ``torch.load(weights_only=True)`` and into a
scheduler built by either implementation.

In the formulas below ``s`` is the scheduler's step count, ``W`` the warmup steps and
``T`` the training steps; "linear warmup" means a multiplier of ``s / max(1, W)`` while
``s < W``. Where the reference is silent:

- ``warmup_stable_decay`` warms up from ``min_lr_ratio`` (not 0) so that the warmup,
  the decay and the tail all share the same floor, and the decay may be ``linear``,
  ``cosine`` or ``1-sqrt``.
- ``polynomial`` and ``cosine_with_min_lr`` read the initial learning rate from
  ``optimizer.defaults["lr"]``; groups with other rates are scaled by the same factor.
- Unknown ``scheduler_specific_kwargs`` keys are rejected with the accepted ones listed,
  instead of a ``TypeError`` from deep inside a factory; numbers given as text
  (``{"power": "0.5"}``, from JSON or a command line) are read as numbers where the
  factory expects one (``_scheduler_kwargs``).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from trainer_args import SchedulerType
from trainer_core import best_metric_key
from trainer_loop import _lr_factors as factors
from trainer_loop._greedy_lr import GreedyLR
from trainer_loop._scheduler_kwargs import numbers_from_text

__all__ = [
    "METRIC_DRIVEN_TYPES",
    "SCHEDULER_NAMES",
    "TYPE_TO_SCHEDULER_FUNCTION",
    "GreedyLR",
    "create_scheduler",
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
    "get_greedy_schedule",
    "get_inverse_sqrt_schedule",
    "get_linear_schedule_with_warmup",
    "get_polynomial_decay_schedule_with_warmup",
    "get_reduce_on_plateau_schedule",
    "get_scheduler",
    "get_wsd_schedule",
    "metric_to_step_on",
    "steps_on_metrics",
]

Scheduler = LRScheduler | ReduceLROnPlateau | GreedyLR

METRIC_DRIVEN: tuple[type, ...] = (ReduceLROnPlateau, GreedyLR)
"""Schedulers the Trainer steps with the evaluation metric, after each evaluation, and
not after each optimizer step."""


METRIC_DRIVEN_TYPES: tuple[SchedulerType, ...] = (
    SchedulerType.REDUCE_ON_PLATEAU,
    SchedulerType.GREEDY,
)
"""The ``lr_scheduler_type`` names that build a ``METRIC_DRIVEN`` scheduler."""


def steps_on_metrics(scheduler: Any) -> bool:
    """Whether ``scheduler`` is stepped with an evaluation metric (see ``METRIC_DRIVEN``)."""
    return isinstance(scheduler, METRIC_DRIVEN)


def metric_to_step_on(metrics: dict[str, float], metric_for_best_model: str | None) -> float:
    """The value a metric-driven schedule steps with: ``metric_for_best_model``'s, else
    the loss.

    Raises:
        KeyError: the evaluation did not report it (with several evaluation datasets the
            loss is ``eval_<name>_loss``), naming what it did report.
    """
    key = best_metric_key(metric_for_best_model or "loss")
    if key not in metrics:
        raise KeyError(
            f"The learning-rate schedule steps on {key!r} (metric_for_best_model="
            f"{metric_for_best_model!r}), but the evaluation returned "
            f"{', '.join(sorted(metrics))}. Set metric_for_best_model to one of those "
            "(with several evaluation datasets, e.g. 'eval_<name>_loss')."
        )
    return metrics[key]


# --- public factories, one per schedule ---------------------------------------------------


def get_constant_schedule(optimizer: Optimizer, last_epoch: int = -1) -> LambdaLR:
    """Keep every group's learning rate at its initial value."""
    return LambdaLR(optimizer, factors.constant_factor, last_epoch=last_epoch)


def get_constant_schedule_with_warmup(
    optimizer: Optimizer, num_warmup_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup from 0, then the initial learning rate."""
    factor = partial(factors.constant_with_warmup_factor, num_warmup_steps=num_warmup_steps)
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_linear_schedule_with_warmup(
    optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup, then a straight line down to 0 at step ``T``: ``(T - s) / (T - W)``."""
    factor = partial(
        factors.linear_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_cosine_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then ``0.5 * (1 + cos(2π · num_cycles · p))`` with ``p`` from 0 to 1.

    The default ``num_cycles=0.5`` is half a cosine wave: from the peak down to 0 at ``T``.
    """
    factor = partial(
        factors.cosine_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_cosine_with_hard_restarts_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: int = 1,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then ``num_cycles`` half-cosine decays, each restarting at the peak."""
    factor = partial(
        factors.cosine_restarts_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_polynomial_decay_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    lr_end: float = 1e-7,
    power: float = 1.0,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then ``(lr - lr_end) · (1 - p)^power + lr_end``, then ``lr_end``.

    Raises:
        ValueError: ``lr_end`` is not below the optimizer's initial learning rate.
    """
    lr_init = optimizer.defaults["lr"]
    if not lr_init > lr_end:
        raise ValueError(
            f"polynomial decay needs lr_end below the initial learning rate; got "
            f"lr_end={lr_end} and lr={lr_init}. Lower lr_end in lr_scheduler_kwargs."
        )
    factor = partial(
        factors.polynomial_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        lr_init=lr_init,
        lr_end=lr_end,
        power=power,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_inverse_sqrt_schedule(
    optimizer: Optimizer,
    num_warmup_steps: int,
    timescale: int | None = None,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then ``1 / sqrt((s - W + timescale) / timescale)``.

    ``timescale`` defaults to ``num_warmup_steps``, or 10,000 when there is no warmup.
    """
    if timescale is None:
        timescale = num_warmup_steps or 10_000
    factor = partial(
        factors.inverse_sqrt_factor, num_warmup_steps=num_warmup_steps, timescale=timescale
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_reduce_on_plateau_schedule(optimizer: Optimizer, **kwargs: Any) -> ReduceLROnPlateau:
    """Torch's ``ReduceLROnPlateau``; ``kwargs`` are its arguments (mode, factor, patience...).

    Step it with the monitored metric: ``scheduler.step(eval_loss)``.
    """
    return ReduceLROnPlateau(optimizer, **kwargs)


def get_greedy_schedule(optimizer: Optimizer, **kwargs: Any) -> GreedyLR:
    """:class:`GreedyLR`; ``kwargs`` are its arguments (mode, factor, patience, min_lr...).

    Step it with the monitored metric: ``scheduler.step(eval_loss)``.
    """
    return GreedyLR(optimizer, **kwargs)


def get_cosine_with_min_lr_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
) -> LambdaLR:
    """Like the cosine schedule, but decaying to a floor instead of 0.

    Give the floor as ``min_lr`` (absolute) or ``min_lr_rate`` (fraction of the initial
    learning rate), exactly one of them.

    Raises:
        ValueError: Both or neither of ``min_lr`` and ``min_lr_rate`` were given.
    """
    min_lr_rate = _min_lr_rate(optimizer, min_lr, min_lr_rate, "cosine_with_min_lr")
    factor = partial(
        factors.cosine_min_lr_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
        min_lr_rate=min_lr_rate,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
    warmup_lr_rate: float | None = None,
) -> LambdaLR:
    """``cosine_warmup_with_min_lr``: the min-lr cosine with a warmup that starts above 0.

    The warmup rises from ``1 / W`` of the peak (or from ``warmup_lr_rate`` of it) and the
    whole curve runs one step ahead of ``cosine_with_min_lr`` (see
    ``_lr_factors.cosine_warmup_min_lr_factor``). The floor is ``min_lr`` or
    ``min_lr_rate``, exactly one of them.

    Raises:
        ValueError: Both or neither of ``min_lr`` and ``min_lr_rate`` were given.
    """
    min_lr_rate = _min_lr_rate(optimizer, min_lr, min_lr_rate, "cosine_warmup_with_min_lr")
    factor = partial(
        factors.cosine_warmup_min_lr_factor,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
        min_lr_rate=min_lr_rate,
        warmup_lr_rate=warmup_lr_rate,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def _min_lr_rate(
    optimizer: Optimizer, min_lr: float | None, min_lr_rate: float | None, name: str
) -> float:
    """The floor as a fraction of the initial rate, from exactly one of the two."""
    if (min_lr is None) == (min_lr_rate is None):
        raise ValueError(
            f"{name} needs exactly one of min_lr and min_lr_rate; got "
            f"min_lr={min_lr}, min_lr_rate={min_lr_rate}. Set one in lr_scheduler_kwargs, "
            "e.g. lr_scheduler_kwargs={'min_lr_rate': 0.1}."
        )
    return min_lr / optimizer.defaults["lr"] if min_lr is not None else min_lr_rate


def get_wsd_schedule(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_decay_steps: int | None = None,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Warmup, a stable phase at the peak, a decay to ``min_lr_ratio``, then that floor.

    Of ``num_stable_steps`` and ``num_decay_steps`` one may be left out when
    ``num_training_steps`` is given: it is what remains of ``T`` after the others.
    ``warmup_type`` and ``decay_type`` are ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.

    Raises:
        ValueError: The phase lengths cannot be determined or do not fit in ``T``, or a
            shape name is unknown.
    """
    for label, kind in (("warmup_type", warmup_type), ("decay_type", decay_type)):
        if kind not in factors.SHAPES:
            raise ValueError(f"{label}={kind!r} is not one of {', '.join(factors.SHAPES)}.")
    num_stable_steps, num_decay_steps = _wsd_phases(
        num_warmup_steps, num_stable_steps, num_decay_steps, num_training_steps
    )
    factor = partial(
        factors.wsd_factor,
        num_warmup_steps=num_warmup_steps,
        num_stable_steps=num_stable_steps,
        num_decay_steps=num_decay_steps,
        warmup_type=warmup_type,
        decay_type=decay_type,
        min_lr_ratio=min_lr_ratio,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, factor, last_epoch=last_epoch)


def _wsd_phases(
    warmup: int, stable: int | None, decay: int | None, total: int | None
) -> tuple[int, int]:
    """Fill in the one missing phase length of warmup-stable-decay from ``total``."""
    if stable is not None and decay is not None:
        return stable, decay
    missing = "num_decay_steps" if decay is None else "num_stable_steps"
    if total is None or (stable is None and decay is None):
        raise ValueError(
            f"warmup_stable_decay needs {missing}: pass it in lr_scheduler_kwargs, or pass "
            "num_training_steps and one of num_stable_steps / num_decay_steps."
        )
    remaining = total - warmup - (stable if stable is not None else decay)
    if remaining < 0:
        raise ValueError(
            f"warmup_stable_decay phases do not fit: num_training_steps={total} is less "
            f"than warmup ({warmup}) plus the given phase; shorten a phase."
        )
    return (stable, remaining) if decay is None else (remaining, decay)


# --- dispatch by name ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Schedule:
    factory: Callable[..., Scheduler]
    needs_warmup: bool = True
    needs_training_steps: bool = True
    accepts_training_steps: bool = True


_SCHEDULES: dict[str, _Schedule] = {
    "linear": _Schedule(get_linear_schedule_with_warmup),
    "cosine": _Schedule(get_cosine_schedule_with_warmup),
    "cosine_with_restarts": _Schedule(get_cosine_with_hard_restarts_schedule_with_warmup),
    "polynomial": _Schedule(get_polynomial_decay_schedule_with_warmup),
    "constant": _Schedule(get_constant_schedule, False, False, False),
    "constant_with_warmup": _Schedule(get_constant_schedule_with_warmup, True, False, False),
    "inverse_sqrt": _Schedule(get_inverse_sqrt_schedule, True, False, False),
    "reduce_lr_on_plateau": _Schedule(get_reduce_on_plateau_schedule, False, False, False),
    "cosine_with_min_lr": _Schedule(get_cosine_with_min_lr_schedule_with_warmup),
    "cosine_warmup_with_min_lr": _Schedule(get_cosine_with_min_lr_schedule_with_warmup_lr_rate),
    "warmup_stable_decay": _Schedule(get_wsd_schedule, True, False, True),
    "greedy": _Schedule(get_greedy_schedule, False, False, False),
}

SCHEDULER_NAMES: tuple[str, ...] = tuple(_SCHEDULES)
"""Every name :func:`get_scheduler` accepts (the values of ``SchedulerType``)."""

TYPE_TO_SCHEDULER_FUNCTION: dict[SchedulerType, Callable[..., Scheduler]] = {
    SchedulerType(name): schedule.factory for name, schedule in _SCHEDULES.items()
}
"""The factory of each ``SchedulerType``, as ``transformers.optimization`` names it.

Keyed by enum members (a plain name does not find its member: an enum hashes by member
name). :func:`get_scheduler` looks the factory up here, so replacing an entry changes
what that name builds; the replacement receives the same arguments."""


def get_scheduler(
    name: str,
    optimizer: Optimizer,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    scheduler_specific_kwargs: Mapping[str, Any] | None = None,
) -> Scheduler:
    """Build the learning-rate schedule called ``name`` over ``optimizer``.

    Args:
        name: A ``SchedulerType`` member or its value, e.g. ``"linear"``.
        optimizer: The optimizer whose groups' learning rates the schedule drives.
        num_warmup_steps: Required by every schedule with a warmup (all but
            ``constant``, ``reduce_lr_on_plateau`` and ``greedy``, which ignore it).
        num_training_steps: Required by the schedules that decay towards step ``T``;
            ``warmup_stable_decay`` uses it to infer a missing phase length.
        scheduler_specific_kwargs: Extra arguments of that schedule's factory, e.g.
            ``{"num_cycles": 2}`` or, for ``reduce_lr_on_plateau`` and ``greedy``,
            ``{"patience": 3}``.

    Raises:
        ValueError: Unknown name, a required step count missing, or a keyword the
            schedule does not accept.
    """
    name = getattr(name, "value", name)
    schedule = _SCHEDULES.get(name)
    if schedule is None:
        raise ValueError(
            f"lr_scheduler_type={name!r} is not a known schedule. "
            f"Valid names: {', '.join(SCHEDULER_NAMES)}."
        )
    factory = TYPE_TO_SCHEDULER_FUNCTION.get(SchedulerType(name), schedule.factory)
    target = _FACTORY_CLASSES.get(factory, factory)
    kwargs = numbers_from_text(target, scheduler_specific_kwargs or {}, name)
    if schedule.needs_warmup:
        _put(kwargs, "num_warmup_steps", _required(num_warmup_steps, "num_warmup_steps", name))
    if schedule.needs_training_steps:
        steps = _required(num_training_steps, "num_training_steps", name)
        _put(kwargs, "num_training_steps", steps)
    elif schedule.accepts_training_steps and num_training_steps is not None:
        _put(kwargs, "num_training_steps", num_training_steps)
    _check_accepted(target, kwargs, name)
    return factory(optimizer, **kwargs)


def _required(value: int | None, argument: str, name: str) -> int:
    if value is None:
        raise ValueError(f"The {name!r} schedule requires `{argument}`; please pass it.")
    if value < 0:
        raise ValueError(f"`{argument}` must be >= 0 for the {name!r} schedule; got {value}.")
    return value


def _put(kwargs: dict[str, Any], key: str, value: Any) -> None:
    if key in kwargs and kwargs[key] != value:
        raise ValueError(
            f"{key} is given twice: {value} as an argument and {kwargs[key]} in "
            "scheduler_specific_kwargs; remove it from scheduler_specific_kwargs."
        )
    kwargs[key] = value


# Factories that forward **kwargs: their class's signature lists what they accept.
_FACTORY_CLASSES: dict[Callable[..., Scheduler], type] = {
    get_reduce_on_plateau_schedule: ReduceLROnPlateau,
    get_greedy_schedule: GreedyLR,
}


def _check_accepted(target: Callable[..., Any], kwargs: dict[str, Any], name: str) -> None:
    accepted = [p for p in inspect.signature(target).parameters if p != "optimizer"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"The {name!r} schedule does not accept {', '.join(unknown)}. "
            f"It accepts: {', '.join(accepted)}. Fix lr_scheduler_kwargs."
        )


def create_scheduler(args: Any, optimizer: Optimizer, num_training_steps: int) -> Scheduler:
    """Build the schedule ``args`` describes for a run of ``num_training_steps`` steps.

    Reads ``args.lr_scheduler_type``, the warmup (``args.get_warmup_steps`` when the
    arguments have it, else ``warmup_steps`` if positive, else
    ``ceil(warmup_ratio * num_training_steps)``; a ``warmup_steps`` below 1 is a ratio,
    as newer releases allow) and ``args.lr_scheduler_kwargs`` (a dict or a JSON string).
    """
    return get_scheduler(
        getattr(args, "lr_scheduler_type", "linear"),
        optimizer,
        num_warmup_steps=_warmup_steps(args, num_training_steps),
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=_scheduler_kwargs(args),
    )


def _warmup_steps(args: Any, num_training_steps: int) -> int:
    get_warmup_steps = getattr(args, "get_warmup_steps", None)
    if callable(get_warmup_steps):
        return get_warmup_steps(num_training_steps)
    steps = getattr(args, "warmup_steps", 0) or 0
    if steps >= 1:
        return int(steps)
    ratio = steps or (getattr(args, "warmup_ratio", 0.0) or 0.0)
    return math.ceil(ratio * num_training_steps)


def _scheduler_kwargs(args: Any) -> dict[str, Any]:
    raw = getattr(args, "lr_scheduler_kwargs", None)
    if not raw:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"lr_scheduler_kwargs={raw!r} is not valid JSON; pass a dict or a JSON object."
            ) from error
    if not isinstance(raw, Mapping):
        raise ValueError(f"lr_scheduler_kwargs must be a dict; got {type(raw).__name__}.")
    return dict(raw)
