"""Every prepared loader draws its iteration seed when ``iter()`` is called, not later.

A ``DataLoader`` iterator takes its base seed from torch's global generator when it is
created. A run resumed in the middle of an epoch restores the checkpoint's generator
states right after ``iter(loader)``; a wrapper that only creates the inner iterator at
the first batch draws that seed *after* the restore, so every dropout mask of the resumed
run differs from the run that never stopped (seen with 2 processes, where the loader is
sharded, while one process on the CPU resumed exactly).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from trainer_dist._batches import DeviceDataLoader
from trainer_dist._deepspeed import _HalfPrecisionBatches
from trainer_dist._sharding import DealtDataLoader, GatherLimit, ShardedDataLoader, ShardingOptions
from trainer_dist._xla import StepMarkingLoader

DATA = [{"x": torch.tensor([float(i)])} for i in range(8)]


def _plain() -> DataLoader:
    return DataLoader(DATA, batch_size=2)


def _sharded() -> Any:
    return ShardedDataLoader(
        _plain(), torch.device("cpu"), num_processes=2, process_index=1, limit=GatherLimit()
    )


def _dealt(split: bool) -> Callable[[], Any]:
    def build() -> Any:
        return DealtDataLoader(
            _plain(),
            torch.device("cpu"),
            num_processes=2,
            process_index=0,
            limit=GatherLimit(),
            sharding=ShardingOptions(split_batches=split),
        )

    return build


LOADERS: dict[str, Callable[[], Any]] = {
    "device-loader-moving": lambda: DeviceDataLoader(_plain(), torch.device("meta")),
    "sharded": _sharded,
    "dealt": _dealt(False),
    "dealt-split-batches": _dealt(True),
    "half-precision": lambda: _HalfPrecisionBatches(_sharded(), torch.bfloat16),
    "xla-step-marking": lambda: StepMarkingLoader(_sharded(), lambda: None),
}


@pytest.mark.parametrize("build", list(LOADERS.values()), ids=list(LOADERS))
def test_iter_draws_the_seed_and_the_first_batch_draws_nothing(build: Callable[[], Any]) -> None:
    loader = build()
    torch.manual_seed(0)
    before_iter = torch.random.get_rng_state()
    batches = iter(loader)
    restored = torch.random.get_rng_state()  # what a resume would set here
    assert not torch.equal(restored, before_iter)  # the seed was drawn by iter()
    next(batches)
    assert torch.equal(torch.random.get_rng_state(), restored)
