"""Builders for the error messages TrainingArguments raises.

Every message has the same three parts: the argument and the value passed, what is
allowed, and how to fix it. Keeping the wording here keeps it uniform across rules.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

E = TypeVar("E", bound=Enum)


def invalid(name: str, value: Any, expected: str, fix: str = "") -> ValueError:
    """A ``ValueError`` for ``name=value`` that says what was ``expected`` and the ``fix``."""
    message = f"{name}={value!r} is not valid: expected {expected}."
    return ValueError(f"{message} {fix}".rstrip())


def wrong_type(name: str, value: Any, expected: str) -> TypeError:
    """A ``TypeError`` for a value of the wrong kind (a string where a number belongs)."""
    return TypeError(
        f"{name}={value!r} has type {type(value).__name__}: expected {expected}. "
        f"Pass {name} as {expected}."
    )


def coerce_enum(name: str, value: Any, enum_cls: type[E]) -> E:
    """Convert ``value`` to a member of ``enum_cls`` or raise an error naming ``name``."""
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum_cls)
        raise invalid(name, value, f"one of {allowed}") from None


def conflict(first: str, first_value: Any, second: str, second_value: Any, fix: str) -> ValueError:
    """A ``ValueError`` for two arguments whose values contradict each other."""
    return ValueError(
        f"{first}={first_value!r} and {second}={second_value!r} contradict each other. {fix}"
    )
