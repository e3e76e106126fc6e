"""Sharding a loader across processes: every sample once per step, padding marked for gather."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from trainer_dist._sharding import (
    DealtDataLoader,
    GatherLimit,
    ShardedBatchSampler,
    ShardedDataLoader,
    StepWindow,
    can_shard,
)


def _shards(size: int, batch: int, processes: int, *, drop_last: bool = False) -> list[list]:
    base = BatchSampler(SequentialSampler(range(size)), batch, drop_last=drop_last)
    samplers = [
        ShardedBatchSampler(
            base, batch_size=batch, num_processes=processes, process_index=rank, drop_last=drop_last
        )
        for rank in range(processes)
    ]
    return [list(sampler) for sampler in samplers], samplers


def test_complete_steps_give_process_i_the_ith_batch() -> None:
    (first, second), samplers = _shards(8, 2, 2)
    assert first == [[0, 1], [4, 5]]
    assert second == [[2, 3], [6, 7]]
    assert all(len(s) == 2 and not s.padded_steps for s in samplers)


def test_an_incomplete_last_step_is_padded_from_the_start_and_recorded() -> None:
    (first, second), samplers = _shards(7, 3, 2)
    assert first == [[0, 1, 2], [6, 0, 1]]
    assert second == [[3, 4, 5], [2, 3, 4]]
    # Concatenated in rank order, the real samples of the padded step come first.
    assert samplers[0].padded_steps == {1: StepWindow(real_rows=1, padded_rows=6)}
    assert len(samplers[0]) == len(samplers[1]) == 2


def test_uneven_batches_deal_the_real_samples_and_fill_empty_processes() -> None:
    base = BatchSampler(SequentialSampler(range(9)), 2, drop_last=False)
    parts = []
    for rank in range(3):
        sampler = ShardedBatchSampler(
            base,
            batch_size=2,
            num_processes=3,
            process_index=rank,
            drop_last=False,
            even_batches=False,
        )
        parts.append(list(sampler))
    assert [p[-1] for p in parts] == [[6, 7], [8], [0]]
    assert sampler.padded_steps == {1: StepWindow(real_rows=3, padded_rows=4)}


def test_drop_last_drops_the_incomplete_step() -> None:
    (first, second), samplers = _shards(7, 2, 2, drop_last=True)
    assert first == [[0, 1]] and second == [[2, 3]]
    assert len(samplers[0]) == 1


def test_the_gather_limit_truncates_only_matching_gathers() -> None:
    limit = GatherLimit()
    gathered = torch.arange(6)
    assert torch.equal(limit.apply(gathered), gathered)
    limit.window = StepWindow(real_rows=1, padded_rows=6)
    assert limit.apply(gathered).tolist() == [0]
    assert limit.apply(torch.arange(2)).tolist() == [0, 1]  # an unrelated gather


def test_the_sharded_loader_sets_the_limit_only_during_the_padded_step() -> None:
    data = [{"x": torch.tensor([float(i)])} for i in range(7)]
    limit = GatherLimit()
    loader = ShardedDataLoader(
        DataLoader(data, batch_size=3),
        torch.device("cpu"),
        num_processes=2,
        process_index=1,
        limit=limit,
    )
    windows, rows = [], []
    for batch in loader:
        windows.append(limit.window)
        rows.append(batch["x"].flatten().tolist())
    # A sequential (evaluation) loader: rank 0 gets the one real sample left, rank 1 a filler.
    assert rows == [[3.0, 4.0, 5.0], [0.0]]
    assert windows == [None, StepWindow(real_rows=1, padded_rows=2)]
    assert limit.window is None
    assert len(loader) == 2 and loader.dataset is data and loader.batch_size == 3


def test_a_training_loader_in_dataset_order_gets_even_batches() -> None:
    class InOrder(SequentialSampler):  # as train_sampling_strategy="sequential" draws
        pass

    data = [{"x": torch.tensor([float(i)])} for i in range(7)]
    loader = ShardedDataLoader(
        DataLoader(data, batch_size=2, sampler=InOrder(data)),
        torch.device("cpu"),
        num_processes=2,
        process_index=1,
        limit=GatherLimit(),
    )
    rows = [batch["x"].flatten().tolist() for batch in loader]
    assert rows == [[2.0, 3.0], [6.0, 0.0]]  # filled from the start, as the reference


def test_streams_are_dealt_batch_by_batch() -> None:
    batches = [torch.full((2,), float(i)) for i in range(5)]
    limit = GatherLimit()
    loader = DealtDataLoader(
        batches, torch.device("cpu"), num_processes=2, process_index=1, limit=limit
    )
    seen = []
    for batch in loader:
        seen.append((batch[0].item(), limit.window))
    # The last group is one batch of 2 rows: one row each, as accelerate's dispatcher deals it.
    assert seen == [(1.0, None), (3.0, None), (4.0, None)]
    assert len(loader) == 3


@pytest.mark.parametrize(("process_index", "expected"), [(0, [16, 17]), (1, [18, 0])])
def test_a_streams_short_last_group_is_split_evenly_as_the_dispatcher(
    process_index: int, expected: list[int]
) -> None:
    # 19 rows in batches of 2: the last group [16, 17] + [18] holds 3 rows, so each
    # process gets 2 and the missing one is the stream's first row, as in the reference
    # (accelerate's DataLoaderDispatcher), not a short batch [18] on process 1.
    batches = [{"idx": torch.arange(i, min(i + 2, 19))} for i in range(0, 19, 2)]
    limit = GatherLimit()
    loader = DealtDataLoader(
        batches, torch.device("cpu"), num_processes=2, process_index=process_index, limit=limit
    )
    seen = [(batch["idx"].tolist(), limit.window) for batch in loader]
    assert len(seen) == 5
    assert seen[-1] == (expected, StepWindow(real_rows=3, padded_rows=4))  # gathers drop the 0
    assert all(window is None for _, window in seen[:-1])


def test_ragged_stream_batches_keep_being_dealt_whole() -> None:
    # Dynamically padded batches (other widths) cannot be joined: a whole first batch
    # completes the last group.
    batches = [torch.zeros(2, 3), torch.ones(2, 5), torch.full((1, 4), 2.0)]
    loader = DealtDataLoader(
        batches, torch.device("cpu"), num_processes=2, process_index=1, limit=GatherLimit()
    )
    assert [tuple(batch.shape) for batch in loader] == [(2, 5), (2, 3)]


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        (DataLoader(list(range(4)), batch_size=2), True),
        (DataLoader(list(range(4)), batch_sampler=[[0, 1], [2, 3]]), False),
        ([1, 2], False),
    ],
)
def test_can_shard_needs_a_map_style_loader_with_a_batch_size(loader, expected) -> None:
    assert can_shard(loader) is expected
