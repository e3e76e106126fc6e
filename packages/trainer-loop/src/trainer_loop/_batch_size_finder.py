"""``auto_find_batch_size``: retry the training loop with a smaller batch on out-of-memory.

Each retry takes 90% of the batch (rounded down), the schedule of accelerate's
``find_executable_batch_size`` that transformers' Trainer uses: halving would waste up
to half the memory that fits.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")

_OOM_MESSAGES = (
    "CUDA out of memory",
    "out of memory",
    "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED",
    "DefaultCPUAllocator: can't allocate memory",
    "MPS backend out of memory",
)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an accelerator or host allocator running out of memory."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in _OOM_MESSAGES)


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def find_executable_batch_size(
    function: Callable[..., T], starting_batch_size: int, *, enabled: bool
) -> Callable[..., T]:
    """Wrap ``function(batch_size, ...)`` to retry with 90% of ``batch_size`` after each OOM.

    With ``enabled=False`` the function is called once with ``starting_batch_size``.
    The batch size that finally ran is what the loop records in the trainer state, so a
    resumed run starts with it instead of searching again.
    """
    if not enabled:
        return functools.partial(function, starting_batch_size)

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> T:
        batch_size = starting_batch_size
        while True:
            try:
                return function(batch_size, *args, **kwargs)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                _release_memory()
                if batch_size == 1:
                    raise RuntimeError(
                        "auto_find_batch_size: out of memory even with a batch size of 1; "
                        "reduce the model or sequence size, or use gradient checkpointing."
                    ) from error
                batch_size = int(batch_size * 0.9)  # at least one less: 9 -> 8, 2 -> 1
                logger.warning("Out of memory: retrying with a batch size of %d", batch_size)

    return run
