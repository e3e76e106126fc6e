"""The samplers and dataset shard user loaders build (``trainer_pt_utils``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from trainer_loop import (
    DistributedLengthGroupedSampler,
    DistributedSamplerWithLoop,
    IterableDatasetShard,
    SequentialDistributedSampler,
    ShardSampler,
    get_dataloader_sampler,
    get_length_grouped_indices,
)


def test_length_grouped_indices_sort_each_megabatch_and_lead_with_the_longest() -> None:
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 11, 0]
    order = get_length_grouped_indices(lengths, 2, generator=torch.Generator().manual_seed(0))
    assert sorted(order) == list(range(12))
    assert lengths[order[0]] == 11
    # 12 // (4 * 2) = 1 batch per megabatch: each pair is sorted by decreasing length but
    # the one whose head was swapped with the longest.
    unsorted = [i for i in range(0, 12, 2) if lengths[order[i]] < lengths[order[i + 1]]]
    assert len(unsorted) <= 1


def test_length_grouped_indices_follow_the_generator_and_mega_batch_mult() -> None:
    lengths = list(range(40))
    generator = torch.Generator().manual_seed(4)
    expected = torch.randperm(40, generator=torch.Generator().manual_seed(4)).tolist()
    order = get_length_grouped_indices(lengths, 5, mega_batch_mult=4, generator=generator)
    # Two megabatches of 20, each sorted by decreasing length; the longest is already first.
    halves = [sorted(expected[:20], reverse=True), sorted(expected[20:], reverse=True)]
    if halves[1][0] > halves[0][0]:
        halves[0][0], halves[1][0] = halves[1][0], halves[0][0]
    assert order == halves[0] + halves[1]
    assert get_length_grouped_indices([], 2) == []


def test_distributed_length_grouped_sampler_deals_one_order_to_the_ranks() -> None:
    lengths = [(i * 7) % 11 for i in range(10)]
    shares = []
    for rank in range(3):
        sampler = DistributedLengthGroupedSampler(2, lengths=lengths, num_replicas=3, rank=rank)
        sampler.set_epoch(1)
        shares.append(list(sampler))
        assert len(sampler) == 4
    generator = torch.Generator().manual_seed(1)  # seed 0 + epoch 1
    order = get_length_grouped_indices(lengths, 2, generator=generator)
    order += order[:2]  # padded to 12 = 3 * 4
    assert shares == [order[0::3], order[1::3], order[2::3]]
    dropped = DistributedLengthGroupedSampler(
        2, lengths=lengths, num_replicas=3, rank=0, drop_last=True
    )
    assert len(dropped) == len(list(dropped)) == 3


def test_distributed_length_grouped_sampler_measures_dict_items() -> None:
    data = [{"input_ids": [0] * n} for n in (3, 1, 2)]
    assert DistributedLengthGroupedSampler(1, data, num_replicas=1, rank=0).lengths == [3, 1, 2]
    with pytest.raises(ValueError, match="'input_ids'"):
        DistributedLengthGroupedSampler(1, [1, 2], num_replicas=1, rank=0)
    with pytest.raises(ValueError, match="lengths"):
        DistributedLengthGroupedSampler(1, num_replicas=1, rank=0)


def test_distributed_sampler_with_loop_completes_the_last_batch() -> None:
    # 10 items on 3 ranks: DistributedSampler gives rank 0 [0, 3, 6, 9]; batches of 3 need 6.
    sampler = DistributedSamplerWithLoop(list(range(10)), 3, num_replicas=3, rank=0, shuffle=False)
    assert list(sampler) == [0, 3, 6, 9, 3, 6]  # rank 0 < 10 % 3: its index 0 is skipped
    sampler = DistributedSamplerWithLoop(list(range(10)), 3, num_replicas=3, rank=2, shuffle=False)
    assert list(sampler) == [2, 5, 8, 1, 2, 5]  # index 1 is the repeat the base sampler added


def test_sequential_distributed_sampler_gives_consecutive_shares() -> None:
    shares = [list(SequentialDistributedSampler(range(5), 2, rank)) for rank in range(2)]
    assert shares == [[0, 1, 2], [3, 4, 0]]
    batched = SequentialDistributedSampler(range(5), num_replicas=2, rank=1, batch_size=2)
    assert len(batched) == 4 and list(batched) == [4, 0, 1, 2]


def test_shard_sampler_splits_each_global_batch() -> None:
    assert list(ShardSampler(range(16), 4, num_processes=2, process_index=0)) == [
        0, 1, 2, 3, 8, 9, 10, 11,
    ]  # fmt: skip
    padded = ShardSampler(range(5), 2, num_processes=2, process_index=1)
    assert list(padded) == [2, 3, 1, 2] and len(padded) == 4  # 0-4 padded with 0, 1, 2
    dropped = ShardSampler(range(5), 2, drop_last=True, num_processes=2, process_index=1)
    assert list(dropped) == [2, 3] and len(dropped) == 2


class _Stream(IterableDataset):
    def __init__(self, count: int) -> None:
        self.count = count
        self.generator = torch.Generator()

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.count, generator=self.generator).tolist())

    def __len__(self) -> int:
        return self.count


def test_iterable_dataset_shard_yields_its_slice_of_each_global_batch() -> None:
    shard = IterableDatasetShard(range(12), batch_size=2, num_processes=2, process_index=1)
    assert list(shard) == [2, 3, 6, 7, 10, 11]
    # 5 items, global batches of 4: the last one is completed from the first.
    shard = IterableDatasetShard(range(5), batch_size=2, num_processes=2, process_index=1)
    assert list(shard) == [2, 3, 1, 2] and shard.num_examples == 5
    dropped = IterableDatasetShard(list(range(5)), 2, drop_last=True, num_processes=2)
    assert list(dropped) == [0, 1] and len(dropped) == 2


def test_iterable_dataset_shard_seeds_the_dataset_generator_per_epoch() -> None:
    shards = [IterableDatasetShard(_Stream(6), 1, num_processes=2, process_index=i) for i in (0, 1)]
    for shard in shards:
        shard.set_epoch(3)
    order = torch.randperm(6, generator=torch.Generator().manual_seed(3)).tolist()
    assert list(shards[0]) == order[0::2] and list(shards[1]) == order[1::2]


def test_get_dataloader_sampler_looks_through_the_batch_sampler() -> None:
    loader = DataLoader(list(range(4)), batch_size=2, sampler=ShardSampler(range(4)))
    assert isinstance(get_dataloader_sampler(loader), ShardSampler)
    assert get_dataloader_sampler(object()) is None
