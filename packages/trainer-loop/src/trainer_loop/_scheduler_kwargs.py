"""Numbers written as text in ``lr_scheduler_kwargs``, read as the schedule expects them.

A JSON config or a command line often quotes numbers (``{"power": "0.5"}``); passed on
as text they fail deep inside the schedule, at its first step, with a ``TypeError`` that
names neither the key nor the argument. The schedule's signature says which keys are
numbers (its annotations: ``float``, ``int``, ``int | None``, ...): for those, text is
read as the number it spells, or refused naming the key. Keys that take words
(``mode="max"``, ``decay_type="cosine"``) and keys the signature does not annotate are
passed on untouched.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["numbers_from_text"]


def numbers_from_text(
    target: Callable[..., Any], kwargs: Mapping[str, Any], schedule: str
) -> dict[str, Any]:
    """A copy of ``kwargs`` with each text value ``target`` expects as a number read as one.

    Args:
        target: the schedule's factory, or the scheduler class its factory forwards to.
        kwargs: the schedule's extra arguments (``lr_scheduler_kwargs``).
        schedule: the schedule's name, for error messages.

    Raises:
        ValueError: a text value where a number belongs is no number, or a fraction
            where an integer belongs.
    """
    parameters = inspect.signature(target).parameters
    converted = dict(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, str) and key in parameters:
            kind = _number_kind(parameters[key].annotation)
            if kind is not None:
                converted[key] = _read_number(key, value, kind, schedule)
    return converted


def _number_kind(annotation: Any) -> type | None:
    """``float`` or ``int`` when the annotation says the parameter is a number (and not
    also a word); None otherwise."""
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    words = set(re.findall(r"\w+", text or str(annotation)))
    if words & {"str", "Literal", "Any", "object"}:
        return None
    if "float" in words:
        return float
    return int if "int" in words else None


def _read_number(key: str, text: str, kind: type, schedule: str) -> float | int:
    expected = "an integer" if kind is int else "a number"
    try:
        number = float(text.strip())
    except ValueError:
        number = math.nan
    whole = math.isfinite(number) and number.is_integer()
    if math.isnan(number) or (kind is int and not whole):
        raise ValueError(
            f"lr_scheduler_kwargs[{key!r}]={text!r}: the {schedule!r} schedule expects "
            f"{key} to be {expected}. Write it as a JSON number, without quotes "
            f'(e.g. {{"{key}": {1 if kind is int else 0.5}}}).'
        )
    return int(number) if kind is int else number
