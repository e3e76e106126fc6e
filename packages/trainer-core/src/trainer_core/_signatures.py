"""How many arguments a callable takes, for APIs that accept several callback shapes."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def number_of_arguments(func: Callable[..., Any]) -> int:
    """The number of parameters ``func`` still takes; a ``functools.partial`` counts only
    those it leaves open.

    Used to tell apart callables users pass in more than one form, such as a
    ``model_init`` that takes a trial and one that takes nothing. Every parameter
    counts, ``*args`` and ``**kwargs`` included, and so does a default.
    """
    if isinstance(func, functools.partial):
        taken = len(inspect.signature(func.func).parameters)
        return taken - len(func.args) - len(func.keywords)
    return len(inspect.signature(func).parameters)
