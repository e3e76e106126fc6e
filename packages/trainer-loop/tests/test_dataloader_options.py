"""dataloader_kwargs, worker seeding, has_length and num_examples."""

from __future__ import annotations

import functools
import pickle
import random
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from trainer_loop import (
    WorkerSeeder,
    dataloader_kwargs,
    default_data_collator,
    has_length,
    num_examples,
    seed_worker,
)


def _args(**overrides) -> SimpleNamespace:
    values = {
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": True,
        "dataloader_drop_last": False,
        "dataloader_persistent_workers": False,
        "dataloader_prefetch_factor": None,
        "seed": 42,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def _accelerator_can_pin() -> bool:
    if not torch.accelerator.is_available():
        return False
    return torch.accelerator.current_accelerator().type != "mps"


@pytest.mark.parametrize("training", [True, False])
def test_defaults_load_in_the_main_process(training: bool) -> None:
    kwargs = dataloader_kwargs(_args(), training=training)
    assert kwargs == {
        "num_workers": 0,
        "pin_memory": _accelerator_can_pin(),
        "drop_last": False,
    }


def test_missing_attributes_take_reference_defaults() -> None:
    kwargs = dataloader_kwargs(SimpleNamespace(), training=True)
    assert kwargs == {"num_workers": 0, "pin_memory": _accelerator_can_pin(), "drop_last": False}


@pytest.mark.parametrize("training", [True, False])
def test_drop_last_applies_to_training_and_evaluation(training: bool) -> None:
    kwargs = dataloader_kwargs(_args(dataloader_drop_last=True), training=training)
    loader = DataLoader(list(range(10)), batch_size=4, **kwargs)
    assert [len(batch) for batch in loader] == [4, 4]


def test_pinning_is_off_when_disabled_or_on_cpu() -> None:
    assert (
        dataloader_kwargs(_args(dataloader_pin_memory=False), training=True)["pin_memory"] is False
    )
    assert dataloader_kwargs(_args(use_cpu=True), training=True)["pin_memory"] is False


def test_worker_options_only_with_workers() -> None:
    args = _args(
        dataloader_num_workers=2, dataloader_persistent_workers=True, dataloader_prefetch_factor=4
    )
    kwargs = dataloader_kwargs(args, training=True, rank=3)
    assert kwargs["num_workers"] == 2
    assert kwargs["persistent_workers"] is True
    assert kwargs["prefetch_factor"] == 4
    seeder = kwargs["worker_init_fn"]
    assert isinstance(seeder, WorkerSeeder)
    assert (seeder.num_workers, seeder.rank) == (2, 3)
    no_prefetch = dataloader_kwargs(_args(dataloader_num_workers=1), training=False)
    assert "prefetch_factor" not in no_prefetch
    assert no_prefetch["persistent_workers"] is False
    ranked = dataloader_kwargs(_args(dataloader_num_workers=1, process_index=5), training=True)
    assert ranked["worker_init_fn"].rank == 5


def test_invalid_worker_settings_explain_the_fix() -> None:
    with pytest.raises(ValueError, match=r"dataloader_prefetch_factor=2 needs worker processes"):
        dataloader_kwargs(_args(dataloader_prefetch_factor=2), training=True)
    with pytest.raises(ValueError, match=r"integer >= 0, got -1"):
        dataloader_kwargs(_args(dataloader_num_workers=-1), training=True)


def _draw() -> tuple[float, float, float]:
    return (random.random(), float(np.random.rand()), torch.rand(()).item())


def test_worker_seeder_is_deterministic_and_rank_dependent() -> None:
    state = torch.random.get_rng_state()
    try:
        draws = []
        for rank in (0, 0, 1):
            torch.manual_seed(123)
            WorkerSeeder(num_workers=2, rank=rank)(0)
            draws.append(_draw())
    finally:
        torch.random.set_rng_state(state)
    assert draws[0] == draws[1]
    assert draws[0] != draws[2]
    assert all(value != draws[0][0] for value in draws[0][1:])
    restored = pickle.loads(pickle.dumps(WorkerSeeder(2, 1)))
    assert repr(restored) == "WorkerSeeder(num_workers=2, rank=1)"


def test_seed_worker_seeds_as_the_seeder_in_both_reference_call_forms() -> None:
    """Bare (v4.34: the worker id only) and as ``partial(seed_worker, num_workers=...,
    rank=...)`` (transformers 5), the function seeds as :class:`WorkerSeeder` does."""
    state = torch.random.get_rng_state()
    try:
        draws = []
        for seed in (WorkerSeeder(2, 1), functools.partial(seed_worker, num_workers=2, rank=1)):
            torch.manual_seed(123)
            seed(0)
            draws.append(_draw())
        for seed in (WorkerSeeder(0, 0), seed_worker):
            torch.manual_seed(123)
            seed(0)
            draws.append(_draw())
    finally:
        torch.random.set_rng_state(state)
    assert draws[0] == draws[1]
    assert draws[2] == draws[3] != draws[0]


class _RandomPerItem(Dataset):
    """Each item draws from the worker's random, NumPy and torch generators."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict:
        py, npy, pt = _draw()
        return {"index": index, "py": py, "np": npy, "pt": pt}


def _load_with_one_worker(seed: int, rank: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    args = _args(dataloader_num_workers=1, dataloader_pin_memory=False)
    kwargs = dataloader_kwargs(args, training=True, rank=rank)
    loader = DataLoader(_RandomPerItem(), batch_size=4, collate_fn=default_data_collator, **kwargs)
    return next(iter(loader))


def test_one_worker_process_is_seeded_reproducibly() -> None:
    # Same main-process seed -> same draws; another rank -> other draws (torch alone would
    # repeat them, since every rank starts from the same seed).
    state = torch.random.get_rng_state()
    try:
        first = _load_with_one_worker(seed=7, rank=0)
        again = _load_with_one_worker(seed=7, rank=0)
        other_rank = _load_with_one_worker(seed=7, rank=1)
    finally:
        torch.random.set_rng_state(state)
    assert first["index"].tolist() == [0, 1, 2, 3]
    for key in ("py", "np", "pt"):
        assert torch.equal(first[key], again[key])
        assert not torch.equal(first[key], other_rank[key])
        assert first[key].unique().numel() == 4


class _Stream(IterableDataset):
    def __iter__(self):
        yield from range(5)


class _NoLength(Dataset):
    def __getitem__(self, index: int) -> int:
        return index


def test_has_length() -> None:
    assert has_length([1, 2])
    assert has_length(datasets.Dataset.from_dict({"x": [1]}))
    assert not has_length(_Stream())
    assert not has_length(_NoLength())
    assert not has_length(torch.tensor(3.0))  # defines __len__ but raises TypeError
    assert not has_length(x for x in range(3))
    stream = datasets.Dataset.from_dict({"x": [1, 2]}).to_iterable_dataset()
    assert not has_length(stream)


def test_num_examples_counts_the_dataset_not_the_batches() -> None:
    loader = DataLoader(list(range(10)), batch_size=4, drop_last=True)
    assert num_examples(loader) == 10


def test_num_examples_estimates_from_batches_without_a_dataset_length() -> None:
    loader = DataLoader(_NoLength(), sampler=list(range(10)), batch_size=4)
    assert num_examples(loader) == 12
    assert num_examples(loader, batch_size=5) == 15


def test_num_examples_of_a_stream_is_an_error() -> None:
    with pytest.raises(TypeError, match="set max_steps"):
        num_examples(DataLoader(_Stream(), batch_size=2))
