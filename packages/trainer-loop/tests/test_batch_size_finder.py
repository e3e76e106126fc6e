"""auto_find_batch_size: 90% of the batch on out-of-memory (accelerate's schedule), re-raise
anything else."""

from __future__ import annotations

import pytest
import torch

from trainer_loop import find_executable_batch_size


def test_shrinks_by_a_tenth_on_out_of_memory_until_it_fits() -> None:
    tried: list[int] = []

    def train(batch_size: int) -> int:
        tried.append(batch_size)
        if batch_size > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return batch_size

    # The batch transformers 5 (accelerate's find_executable_batch_size) settles on.
    assert find_executable_batch_size(train, 16, enabled=True)() == 5
    assert tried == [16, 14, 12, 10, 9, 8, 7, 6, 5]


def test_disabled_calls_once_and_lets_errors_through() -> None:
    def train(batch_size: int) -> int:
        raise torch.OutOfMemoryError("out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        find_executable_batch_size(train, 8, enabled=False)()


def test_other_errors_are_not_retried() -> None:
    calls = []

    def train(batch_size: int) -> None:
        calls.append(batch_size)
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        find_executable_batch_size(train, 8, enabled=True)()
    assert calls == [8]


def test_gives_up_at_batch_size_one() -> None:
    def train(batch_size: int) -> None:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    with pytest.raises(RuntimeError, match="batch size of 1"):
        find_executable_batch_size(train, 4, enabled=True)()
