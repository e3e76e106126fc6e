"""LengthGroupedSampler, seeded generators and the train / eval sampler choice."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import datasets
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, IterableDataset, RandomSampler, SequentialSampler

from trainer_loop import (
    LengthGroupedSampler,
    build_eval_sampler,
    build_train_sampler,
    seeded_generator,
)


def _args(**overrides) -> SimpleNamespace:
    values = {
        "seed": 42,
        "data_seed": None,
        "group_by_length": False,
        "length_column_name": "length",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


class _Sequences(Dataset):
    """Map-style dataset of token lists of the given lengths."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": list(range(self.lengths[index])), "label": index % 2}


class _Stream(IterableDataset):
    def __iter__(self):
        yield from ({"input_ids": [1, 2]} for _ in range(4))


class _SizedStream(_Stream):
    def __len__(self) -> int:
        return 4


def test_seeded_generator_is_reproducible_and_validates() -> None:
    first = torch.randperm(20, generator=seeded_generator(3))
    again = torch.randperm(20, generator=seeded_generator(3))
    other = torch.randperm(20, generator=seeded_generator(4))
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()
    with pytest.raises(TypeError, match="seed must be an int"):
        seeded_generator("3")  # type: ignore[arg-type]  # the error path is under test


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=400),
    batch_size=st.integers(min_value=1, max_value=16),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_every_index_once_and_longest_first(lengths: list[int], batch_size: int, seed: int) -> None:
    sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=seeded_generator(seed))
    order = list(sampler)
    assert len(sampler) == len(lengths)
    assert sorted(order) == list(range(len(lengths)))
    assert lengths[order[0]] == max(lengths)


def test_same_generator_seed_gives_same_order_and_epochs_differ() -> None:
    lengths = [(7 * i) % 31 for i in range(300)]
    first = LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(0))
    second = LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(0))
    epoch_one = list(first)
    assert epoch_one == list(second)
    assert list(first) != epoch_one  # the generator advanced: a new order next epoch
    other_seed = LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(1))
    assert list(other_seed) != epoch_one


def _padding(order: list[int], lengths: list[int], batch_size: int) -> int:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in batches)


def test_megabatches_are_sorted_and_padding_shrinks() -> None:
    lengths = torch.randint(1, 512, (2000,), generator=seeded_generator(5)).tolist()
    batch_size = 8  # 2000 // (4 * 8) = 62 -> capped at 50 batches per megabatch
    order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=seeded_generator(1)))
    megabatch = 50 * batch_size
    for start in range(megabatch, len(order), megabatch):  # the first one holds the swap
        chunk = [lengths[i] for i in order[start : start + megabatch]]
        assert chunk == sorted(chunk, reverse=True)
    shuffled = list(RandomSampler(range(2000), generator=seeded_generator(1)))
    assert _padding(order, lengths, batch_size) * 10 < _padding(shuffled, lengths, batch_size)


def test_small_dataset_uses_one_batch_per_megabatch() -> None:
    lengths = [1, 9, 3, 7, 5, 2, 8, 4]
    order = list(LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(0)))
    # 8 // (4 * 4) = 0 -> megabatches of a single batch, each sorted by length; only
    # the heads may be out of order, since the global maximum is swapped to the front.
    assert order[0] == 1
    for tail in (order[1:4], order[5:]):
        tail_lengths = [lengths[i] for i in tail]
        assert tail_lengths == sorted(tail_lengths, reverse=True)


def test_lengths_from_tensor_and_empty() -> None:
    sampler = LengthGroupedSampler(2, lengths=torch.tensor([3, 1, 2]))
    assert sampler.lengths == [3, 1, 2]
    assert sorted(sampler) == [0, 1, 2]
    assert list(LengthGroupedSampler(2, lengths=[])) == []


def test_lengths_are_measured_from_items_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    dataset = _Sequences([5, 1, 12, 3])
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        sampler = LengthGroupedSampler(2, dataset=dataset, generator=seeded_generator(0))
    assert sampler.lengths == [5, 1, 12, 3]
    assert "input_ids" in caplog.text
    assert "whole dataset" in caplog.text
    assert next(iter(sampler)) == 2


def test_length_column_of_a_datasets_dataset_is_used(caplog: pytest.LogCaptureFixture) -> None:
    # The column deliberately disagrees with the real lengths: it must win, unread items.
    dataset = datasets.Dataset.from_dict(
        {"input_ids": [[1], [1, 2], [1, 2, 3]], "n_tokens": [30, 10, 20]}
    )
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        sampler = LengthGroupedSampler(
            1, dataset=dataset, generator=seeded_generator(0), length_column_name="n_tokens"
        )
    assert sampler.lengths == [30, 10, 20]
    assert caplog.text == ""
    assert next(iter(sampler)) == 0


def test_sampler_argument_errors() -> None:
    with pytest.raises(ValueError, match="positive int, got 0"):
        LengthGroupedSampler(0, lengths=[1])
    with pytest.raises(ValueError, match="pass lengths="):
        LengthGroupedSampler(2)
    with pytest.raises(ValueError, match="sequence of ints"):
        LengthGroupedSampler(2, lengths=["a", "b"])
    with pytest.raises(ValueError, match=r"'tokens' key, got dict with keys \['input_ids'"):
        LengthGroupedSampler(2, dataset=_Sequences([1, 2]), model_input_name="tokens")
    with pytest.raises(ValueError, match="expected a dict"):
        LengthGroupedSampler(2, dataset=[[1, 2], [3]])


def test_train_sampler_is_seeded_by_data_seed_before_seed() -> None:
    dataset = _Sequences([1] * 50)

    def order(**overrides) -> list[int]:
        sampler = build_train_sampler(dataset, _args(**overrides), train_batch_size=4)
        assert isinstance(sampler, RandomSampler)
        return list(sampler)

    assert order(seed=1) == order(seed=1)
    assert order(seed=1) != order(seed=2)
    assert order(seed=1, data_seed=7) == order(seed=2, data_seed=7)
    assert order(seed=7) == order(seed=1, data_seed=7)
    assert order(data_seed=7) != order(data_seed=8)


def test_seed_keyword_is_the_fallback_for_a_missing_data_seed() -> None:
    dataset = _Sequences([1] * 50)
    from_keyword = build_train_sampler(dataset, _args(seed=1), train_batch_size=4, seed=9)
    from_args = build_train_sampler(dataset, _args(seed=9), train_batch_size=4)
    with_data_seed = build_train_sampler(dataset, _args(data_seed=9), train_batch_size=4, seed=1)
    assert list(from_keyword) == list(from_args) == list(with_data_seed)


def test_group_by_length_builds_a_length_grouped_sampler() -> None:
    dataset = datasets.Dataset.from_dict(
        {"input_ids": [[0] * n for n in (4, 9, 2, 6)], "size": [4, 9, 2, 6]}
    )
    args = _args(group_by_length=True, length_column_name="size", data_seed=3)
    sampler = build_train_sampler(dataset, args, train_batch_size=2)
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.batch_size == 2
    assert sampler.lengths == [4, 9, 2, 6]
    again = build_train_sampler(dataset, args, train_batch_size=2)
    assert list(sampler) == list(again)
    assert next(iter(sampler)) == 1


def test_group_by_length_groups_the_examples_of_one_optimizer_step() -> None:
    args = _args(group_by_length=True, gradient_accumulation_steps=4)
    sampler = build_train_sampler(_Sequences([5] * 16), args, train_batch_size=2)
    assert sampler.batch_size == 8  # 2 per micro-batch x 4 micro-batches, as the reference


def test_group_by_length_measures_a_custom_input_name() -> None:
    class _Audio(_Sequences):
        def __getitem__(self, index: int) -> dict:
            return {"input_values": [0.0] * self.lengths[index]}

    args = _args(group_by_length=True)
    sampler = build_train_sampler(
        _Audio([3, 8, 1]), args, train_batch_size=1, model_input_name="input_values"
    )
    assert sampler.lengths == [3, 8, 1]


@pytest.mark.parametrize("dataset", [_Stream(), _SizedStream(), None, (x for x in range(3))])
def test_streams_get_no_sampler(dataset, caplog: pytest.LogCaptureFixture) -> None:
    assert build_train_sampler(dataset, _args(), train_batch_size=2) is None
    assert not caplog.records
    assert build_train_sampler(dataset, _args(group_by_length=True), train_batch_size=2) is None
    if dataset is not None:  # a stream cannot be grouped: the user is told
        assert "group_by_length=True is ignored" in caplog.text
    assert build_eval_sampler(dataset) is None


def test_eval_sampler_keeps_dataset_order() -> None:
    sampler = build_eval_sampler(_Sequences([3, 1, 2, 5]))
    assert isinstance(sampler, SequentialSampler)
    assert list(sampler) == [0, 1, 2, 3]
    hf_dataset = datasets.Dataset.from_dict({"x": [1, 2, 3]})
    assert list(build_eval_sampler(hf_dataset)) == [0, 1, 2]


def test_a_resumed_pass_still_tells_its_whole_order() -> None:
    """A distributed runtime fills an epoch's uneven last step from the pass's start."""
    from trainer_loop import SeekableRandomSampler

    whole = SeekableRandomSampler(range(10), generator=seeded_generator(3))
    order = list(whole)
    assert whole.pass_order == order
    resumed = SeekableRandomSampler(range(10), generator=seeded_generator(3))
    resumed.seek(skip=6)
    assert list(resumed) == order[6:]
    assert resumed.pass_order == order
