"""The learning-rate multipliers behind the schedules in ``_schedulers``.

Each function maps a step count to the factor that multiplies a group's initial
learning rate. They live at module level (bound to their settings with
``functools.partial``) so that a ``LambdaLR`` built on them pickles; keep their names
stable, since a pickled scheduler refers to them by qualified name.
"""

from __future__ import annotations

import math

__all__ = [
    "SHAPES",
    "constant_factor",
    "constant_with_warmup_factor",
    "cosine_factor",
    "cosine_min_lr_factor",
    "cosine_restarts_factor",
    "cosine_warmup_min_lr_factor",
    "inverse_sqrt_factor",
    "linear_factor",
    "polynomial_factor",
    "wsd_factor",
]

SHAPES = ("linear", "cosine", "1-sqrt")
"""The curve names that warmup-stable-decay accepts for its warmup and its decay."""


def _warmup(step: int, num_warmup_steps: int) -> float:
    return step / max(1, num_warmup_steps)


def constant_factor(step: int) -> float:
    return 1.0


def constant_with_warmup_factor(step: int, *, num_warmup_steps: int) -> float:
    return _warmup(step, num_warmup_steps) if step < num_warmup_steps else 1.0


def linear_factor(step: int, *, num_warmup_steps: int, num_training_steps: int) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    remaining = num_training_steps - step
    return max(0.0, remaining / max(1, num_training_steps - num_warmup_steps))


def _progress(step: int, num_warmup_steps: int, num_training_steps: int) -> float:
    """Fraction of the post-warmup steps done: 0 at the end of warmup, 1 at ``T``."""
    return (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)


def cosine_factor(
    step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    progress = _progress(step, num_warmup_steps, num_training_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress)))


def cosine_restarts_factor(
    step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: int
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    progress = _progress(step, num_warmup_steps, num_training_steps)
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0))))


def polynomial_factor(
    step: int,
    *,
    num_warmup_steps: int,
    num_training_steps: int,
    lr_init: float,
    lr_end: float,
    power: float,
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    if step > num_training_steps:
        return lr_end / lr_init
    remaining = 1.0 - _progress(step, num_warmup_steps, num_training_steps)
    return ((lr_init - lr_end) * remaining**power + lr_end) / lr_init


def inverse_sqrt_factor(step: int, *, num_warmup_steps: int, timescale: int) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    return 1.0 / math.sqrt((step - num_warmup_steps + timescale) / timescale)


def cosine_min_lr_factor(
    step: int,
    *,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float,
    min_lr_rate: float,
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    progress = _progress(step, num_warmup_steps, num_training_steps)
    cosine = 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress))
    return max(0.0, cosine * (1.0 - min_lr_rate) + min_lr_rate)


def cosine_warmup_min_lr_factor(
    step: int,
    *,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float,
    min_lr_rate: float,
    warmup_lr_rate: float | None,
) -> float:
    """``cosine_warmup_with_min_lr``: the min-lr cosine counted one step ahead.

    Unlike the other schedules, step ``s`` is read as "``s + 1`` steps done": the warmup
    starts at ``1 / W`` instead of 0 (or at ``warmup_lr_rate``, rising to the peak at
    ``W - 1``), and the decay is one step further along than ``cosine_min_lr_factor``'s.
    """
    if step < num_warmup_steps:
        if warmup_lr_rate is None:
            return (step + 1) / max(1, num_warmup_steps)
        return warmup_lr_rate + (1.0 - warmup_lr_rate) * step / max(1, num_warmup_steps - 1)
    progress = _progress(step + 1, num_warmup_steps, num_training_steps)
    cosine = 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress))
    return max(0.0, cosine * (1.0 - min_lr_rate) + min_lr_rate)


def _shape(kind: str, progress: float, num_cycles: float) -> float:
    """A curve from 1 (``progress=0``) down to 0 (``progress=1``)."""
    if kind == "linear":
        return 1.0 - progress
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(2.0 * math.pi * num_cycles * progress))
    return 1.0 - math.sqrt(progress)


def wsd_factor(
    step: int,
    *,
    num_warmup_steps: int,
    num_stable_steps: int,
    num_decay_steps: int,
    warmup_type: str,
    decay_type: str,
    min_lr_ratio: float,
    num_cycles: float,
) -> float:
    if step < num_warmup_steps:
        # The decay curves run backwards: 0 at the start of warmup, 1 at its end.
        rising = _shape(warmup_type, 1.0 - step / max(1, num_warmup_steps), 0.5)
        return rising * (1.0 - min_lr_ratio) + min_lr_ratio
    decay_start = num_warmup_steps + num_stable_steps
    if step < decay_start:
        return 1.0
    if step < decay_start + num_decay_steps:
        progress = (step - decay_start) / max(1, num_decay_steps)
        falling = _shape(decay_type, progress, num_cycles)
        return max(0.0, falling * (1.0 - min_lr_ratio) + min_lr_ratio)
    return min_lr_ratio
