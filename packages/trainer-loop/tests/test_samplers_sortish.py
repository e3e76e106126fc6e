"""SortishSampler: whole batches of similar lengths in a random, seeded, resumable order."""

from __future__ import annotations

import itertools
import logging
from types import SimpleNamespace

import datasets
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from trainer_args import Seq2SeqTrainingArguments
from trainer_loop import (
    LengthGroupedSampler,
    SeekableRandomSampler,
    SortishSampler,
    build_train_sampler,
    seeded_generator,
)


class _Sequences(Dataset):
    """Examples whose ``input_ids`` have the given lengths."""

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": list(range(self.lengths[index])), "index": index}


def _random_lengths(count: int, seed: int = 0) -> list[int]:
    return torch.randint(1, 2000, (count,), generator=seeded_generator(seed)).tolist()


def _batches(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _mean_spread(order: list[int], lengths: list[int], batch_size: int) -> float:
    """Mean over full batches of (longest - shortest) length: the padding a batch costs."""
    spreads = [
        max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
        for batch in _batches(order, batch_size)
        if len(batch) == batch_size
    ]
    return sum(spreads) / len(spreads)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 50), max_size=300),
    batch_size=st.integers(1, 17),
    seed=st.integers(0, 2**16),
)
def test_every_pass_is_a_permutation_of_all_indices(
    lengths: list[int], batch_size: int, seed: int
) -> None:
    sampler = SortishSampler(batch_size, lengths, generator=seeded_generator(seed))
    for _ in range(2):
        assert sorted(sampler) == list(range(len(lengths)))
    assert len(sampler) == len(lengths)


def test_batches_hold_similar_lengths() -> None:
    lengths = _random_lengths(4000)
    order = list(SortishSampler(8, lengths, generator=seeded_generator(1)))
    random = list(SeekableRandomSampler(lengths, generator=seeded_generator(1)))
    # Random batches of 8 out of lengths 1..2000 span ~1500; sorted chunks of 400, ~40.
    assert _mean_spread(order, lengths, 8) < 0.05 * _mean_spread(random, lengths, 8)
    for batch in _batches(order, 8):  # each batch is one run of a sorted chunk
        batch_lengths = [lengths[i] for i in batch]
        assert batch_lengths == sorted(batch_lengths, reverse=True)


def test_the_loader_draws_the_samplers_batches() -> None:
    lengths = _random_lengths(203)
    sampler = SortishSampler(4, lengths, generator=seeded_generator(5))
    loader = DataLoader(
        _Sequences(lengths), batch_size=4, sampler=sampler, collate_fn=lambda rows: rows
    )
    batches = [[row["index"] for row in batch] for batch in loader]
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # longest batch first
    assert len(batches[-1]) == 3  # the short batch last, so every other one is full
    assert all(len(batch) == 4 for batch in batches[:-1])
    assert sorted(i for batch in batches for i in batch) == list(range(203))


def test_the_batch_order_is_shuffled_not_descending_within_chunks() -> None:
    lengths = _random_lengths(4000)
    heads = [
        lengths[batch[0]]
        for batch in _batches(list(SortishSampler(8, lengths, seeded_generator(2))), 8)
    ]
    grouped = [
        lengths[batch[0]]
        for batch in _batches(
            list(LengthGroupedSampler(8, lengths=lengths, generator=seeded_generator(2))), 8
        )
    ]

    def falls(values: list[int]) -> float:
        return sum(a >= b for a, b in itertools.pairwise(values)) / (len(values) - 1)

    assert falls(grouped) > 0.95  # a saw-tooth: long to short within each megabatch
    assert 0.3 < falls(heads) < 0.7  # unrelated: as often up as down


def test_the_order_is_the_same_for_a_seed_and_differs_between_seeds_and_epochs() -> None:
    lengths = _random_lengths(500)

    def two_epochs(seed: int) -> tuple[list[int], list[int]]:
        sampler = SortishSampler(8, lengths, generator=seeded_generator(seed))
        return list(sampler), list(sampler)

    first, second = two_epochs(7)
    assert two_epochs(7) == (first, second)
    assert first != second
    assert two_epochs(8)[0] != first


def test_seek_resumes_a_pass_where_the_checkpoint_left_it() -> None:
    lengths = _random_lengths(300)
    sampler = SortishSampler(8, lengths, generator=seeded_generator(3))
    list(sampler)  # epoch 0
    epoch_one = list(sampler)
    resumed = SortishSampler(8, lengths, generator=seeded_generator(3))
    resumed.seek(skip=40, passes_done=1)
    assert list(resumed) == epoch_one[40:]
    assert list(resumed) == list(sampler)  # and the next pass follows as uninterrupted


def test_invalid_batch_sizes_and_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        SortishSampler(0, [1, 2])
    with pytest.raises(ValueError, match="lengths must be a sequence of ints"):
        SortishSampler(2, ["a", "b"])


# ------------------------------------------------------- choosing it from the arguments
def _args(**overrides) -> SimpleNamespace:
    values = {"seed": 42, "data_seed": None, "group_by_length": False, "sortish_sampler": True}
    values.update(overrides, length_column_name="length")
    return SimpleNamespace(**values)


def test_sortish_sampler_is_chosen_seeded_like_the_random_sampler() -> None:
    dataset = _Sequences(_random_lengths(100))
    sampler = build_train_sampler(dataset, _args(data_seed=11), train_batch_size=4)
    assert isinstance(sampler, SortishSampler) and sampler.batch_size == 4
    expected = SortishSampler(4, dataset.lengths, generator=seeded_generator(11))
    assert list(sampler) == list(expected)
    # It wins over group_by_length; without it the usual choices stay.
    both = build_train_sampler(dataset, _args(group_by_length=True), train_batch_size=4)
    assert isinstance(both, SortishSampler)
    off = build_train_sampler(dataset, _args(sortish_sampler=False), train_batch_size=4)
    assert isinstance(off, SeekableRandomSampler)


def test_a_length_column_is_read_instead_of_measuring() -> None:
    dataset = datasets.Dataset.from_dict({"input_ids": [[1]] * 6, "length": [5, 1, 4, 2, 6, 3]})
    sampler = build_train_sampler(dataset, _args(), train_batch_size=2)
    assert isinstance(sampler, SortishSampler) and sampler.lengths == [5, 1, 4, 2, 6, 3]


def test_without_lengths_it_warns_and_samples_randomly(caplog) -> None:
    class Pairs(Dataset):
        def __len__(self) -> int:
            return 5

        def __getitem__(self, index: int) -> tuple[int, int]:
            return index, index

    with caplog.at_level(logging.WARNING, logger="trainer_loop._samplers"):
        sampler = build_train_sampler(Pairs(), _args(), train_batch_size=2)
    assert isinstance(sampler, SeekableRandomSampler)
    assert "sortish_sampler=True, but the lengths" in caplog.text


def test_the_trainer_trains_from_a_sortish_sampler(tmp_path) -> None:
    from torch import nn

    from trainer_loop import Seq2SeqTrainer

    class Summer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1))

        def forward(self, input_ids: torch.Tensor, index: torch.Tensor) -> dict:
            return {"loss": (self.weight * input_ids.float()).mean()}

    lengths = _random_lengths(24)
    seen: list[list[int]] = []

    def collate(rows: list[dict]) -> dict:
        seen.append([row["index"] for row in rows])
        width = max(len(row["input_ids"]) for row in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        return {"input_ids": ids, "index": torch.tensor([row["index"] for row in rows])}

    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        sortish_sampler=True,
        per_device_train_batch_size=4,
        num_train_epochs=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        save_strategy="no",
    )
    trainer = Seq2SeqTrainer(
        model=Summer(), args=args, train_dataset=_Sequences(lengths), data_collator=collate
    )
    trainer.train()
    expected = SortishSampler(4, lengths, generator=seeded_generator(42))
    assert seen == _batches(list(expected), 4)
