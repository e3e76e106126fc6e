"""``find_executable_batch_size`` with the signature of ``transformers.trainer_utils``.

Scripts decorate their own training function with it::

    @find_executable_batch_size(starting_batch_size=64, auto_find_batch_size=True)
    def train(batch_size): ...

The search itself is the Trainer's (``trainer_loop.find_executable_batch_size``, which
takes ``enabled=`` instead); this module only adapts the calling convention.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from trainer_loop._batch_size_finder import find_executable_batch_size as _search

T = TypeVar("T")


def find_executable_batch_size_decorator(
    function: Callable[..., T] | None = None,
    starting_batch_size: int = 128,
    auto_find_batch_size: bool = False,
) -> Any:
    """Wrap ``function(batch_size, ...)`` to retry with 90% of the batch after running out
    of memory, when ``auto_find_batch_size`` is True.

    Without ``function`` it returns a decorator taking it. With
    ``auto_find_batch_size=False`` the function is called once, with
    ``batch_size=starting_batch_size`` as a keyword argument. The search raises
    RuntimeError when even a batch of 1 does not fit.
    """
    if function is None:
        return functools.partial(
            find_executable_batch_size_decorator,
            starting_batch_size=starting_batch_size,
            auto_find_batch_size=auto_find_batch_size,
        )
    if not auto_find_batch_size:
        return functools.partial(function, batch_size=starting_batch_size)
    return _search(function, starting_batch_size, enabled=True)
