"""Step counts that may be given as a fraction of the whole training run.

``logging_steps``, ``eval_steps`` and ``save_steps`` accept either a whole number of
optimizer steps (``500``) or a float below 1 meaning that fraction of the total number of
training steps (``0.1`` = every tenth of the run). The arguments store the value as given;
the training loop, which knows the total, calls :func:`resolve_steps`.
"""

from __future__ import annotations

import math
from typing import Any

from trainer_args._messages import conflict, invalid, wrong_type


def normalize_step_interval(name: str, value: float | int) -> float | int:
    """Check a step interval and return it as an ``int`` when it is a whole number >= 1.

    Raises:
        TypeError: ``value`` is not a number.
        ValueError: ``value`` is negative, or above 1 without being a whole number
            (``2.5`` steps means nothing; a fraction must be below 1).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise wrong_type(
            name, value, "a number of steps (int) or a fraction of the run (float < 1)"
        )
    if value < 0 or math.isnan(value):
        raise invalid(name, value, "a number >= 0", "Use a positive number of steps.")
    if value >= 1:
        if value != int(value):
            raise invalid(
                name,
                value,
                "a whole number of steps when >= 1, or a fraction of the run below 1",
                f"Use {name}={math.floor(value)} or a fraction such as 0.1.",
            )
        return int(value)
    return value


def resolve_steps(value: float | int, total_steps: int) -> int:
    """Turn a step interval into a number of optimizer steps.

    Args:
        value: an interval as stored in TrainingArguments: a whole number of steps, or a
            fraction of the run in (0, 1).
        total_steps: the number of optimizer steps of the whole run.

    Returns:
        ``value`` itself when it is >= 1 (or 0); otherwise ``ceil(value * total_steps)``,
        at least 1, so that a small fraction of a short run still triggers.

    Raises:
        ValueError: ``value`` is negative, or a fraction while ``total_steps`` is not a
            positive number (the run length must be known to resolve a fraction).
    """
    value = normalize_step_interval("value", value)
    if value == 0 or value >= 1:
        return int(value)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise invalid(
            "total_steps",
            total_steps,
            "a positive int to resolve the fractional interval " + repr(value),
            "Set max_steps when the dataset has no length, or give the interval in steps.",
        )
    return max(1, math.ceil(value * total_steps))


def is_whole_multiple(value: float, base: float) -> bool:
    """Whether ``value`` is a whole multiple of ``base`` (both > 0), tolerant of float noise.

    Ratios such as ``save_steps=0.2``, ``eval_steps=0.1`` are compared the same way as
    step counts: ``0.2 / 0.1`` is 2 up to rounding error.
    """
    if base <= 0:
        return False
    ratio = value / base
    return ratio >= 1 - 1e-9 and math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-9)


def _bad_warmup(steps: float) -> Exception:
    """The error for a float ``warmup_steps`` that is neither whole nor a fraction.

    Above 1 it is a ``TypeError`` (a step count is an int), as before; a negative or
    NaN value is a ``ValueError``, as transformers raises it. Both messages say that
    floats are fine as fractions, which a plain "expected an integer" hid.
    """
    growing = math.isfinite(steps) and steps > 1
    error = invalid(
        "warmup_steps",
        steps,
        "a whole number of steps >= 0, or a fraction of the run between 0 and 1",
        f"Use warmup_steps={math.floor(steps) if growing else 0} or a fraction such as 0.1.",
    )
    return TypeError(str(error)) if growing else error


def normalize_warmup(args: Any) -> None:
    """``warmup_steps`` below 1 is a share of the run (transformers 5, which dropped
    ``warmup_ratio``): it is kept as given, and readers resolve it with
    ``get_warmup_steps``; a whole float becomes an int.

    Storing the share in ``warmup_steps`` (not in ``warmup_ratio``) keeps the field, its
    ``to_dict()`` and ``training_args.json`` as the user wrote them, as transformers 5
    keeps them. A ``warmup_ratio`` given too must be 0 or the same share.

    Raises:
        ValueError: the fraction contradicts a ``warmup_ratio`` given too, or the float
            is negative or NaN.
        TypeError: the float is above 1 without being whole (``1.5``).
    """
    steps = args.warmup_steps
    if not isinstance(steps, float) or isinstance(steps, bool):
        return
    if steps.is_integer():
        args.warmup_steps = int(steps)
        return
    if not 0 < steps < 1:
        raise _bad_warmup(steps)
    if args.warmup_ratio not in (0, steps):
        raise conflict(
            "warmup_steps", steps, "warmup_ratio", args.warmup_ratio,
            "A warmup_steps below 1 is the warm-up's share of the run; give one of them.",
        )  # fmt: skip


def warmup_share(args: Any) -> float:
    """The warm-up as a share of the run: a ``warmup_steps`` below 1, else ``warmup_ratio``
    (0 when ``warmup_steps`` is a step count, which takes precedence)."""
    steps = args.warmup_steps
    if steps >= 1:
        return 0.0
    return steps if steps > 0 else args.warmup_ratio
