"""accelerator_config's data-loader options: split_batches, even_batches, and the two
(dispatch_batches, use_seedable_sampler) whose samples our loaders already match."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from trainer_args import TrainingArguments
from trainer_dist import build_runtime
from trainer_dist._connector import deepspeed_argument_values, sharding_options
from trainer_dist._sharding import (
    DealtDataLoader,
    GatherLimit,
    ShardedBatchSampler,
    ShardedDataLoader,
    ShardingOptions,
    StepWindow,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def _parts(size: int, batch: int, processes: int, **options: Any) -> list[list[list[int]]]:
    base = BatchSampler(SequentialSampler(range(size)), batch, drop_last=False)
    return [
        list(
            ShardedBatchSampler(
                base,
                batch_size=batch,
                num_processes=processes,
                process_index=rank,
                drop_last=False,
                **options,
            )
        )
        for rank in range(processes)
    ]


# --------------------------------------------------------------------- the sampler
def test_split_batches_gives_each_process_a_slice_of_every_batch() -> None:
    first, second = _parts(8, 4, 2, split_batches=True)
    assert first == [[0, 1], [4, 5]]
    assert second == [[2, 3], [6, 7]]


def test_an_incomplete_split_batch_is_filled_from_the_start_and_recorded() -> None:
    base = BatchSampler(SequentialSampler(range(10)), 4, drop_last=False)
    samplers = [
        ShardedBatchSampler(
            base,
            batch_size=4,
            num_processes=2,
            process_index=rank,
            drop_last=False,
            split_batches=True,
        )
        for rank in range(2)
    ]
    assert [list(s)[-1] for s in samplers] == [[8, 9], [0, 1]]
    assert samplers[0].padded_steps == {2: StepWindow(real_rows=2, padded_rows=4)}
    assert len(samplers[0]) == 3 and samplers[0].total_batch_size == 4


def test_uneven_split_batches_deal_the_real_samples() -> None:
    parts = _parts(9, 4, 2, split_batches=True, even_batches=False)
    assert [p[-1] for p in parts] == [[8], [0]]  # rank 1 has no real sample left


@pytest.mark.parametrize("split", [False, True])
def test_even_batches_give_each_process_what_accelerate_gives_it(split: bool) -> None:
    """Same indices per process as accelerate's BatchSamplerShard (dispatch_batches=False;
    its dispatcher gives the same rows), across sizes, batch sizes, process counts."""
    for size, batch, processes, drop in itertools.product(
        range(1, 14), (2, 4, 6), (2, 3), (False, True)
    ):
        if split and batch % processes:
            continue
        base = BatchSampler(SequentialSampler(range(size)), batch, drop_last=drop)
        for rank in range(processes):
            ours = ShardedBatchSampler(
                base,
                batch_size=batch,
                num_processes=processes,
                process_index=rank,
                drop_last=drop,
                split_batches=split,
            )
            theirs = BatchSamplerShard(base, processes, rank, split_batches=split)
            assert list(ours) == list(theirs), (size, batch, processes, drop, rank)
            assert len(ours) == len(theirs)


# --------------------------------------------------------------------- the loaders
def _loader(size: int, batch: int, *, shuffle: bool) -> DataLoader:
    data = [{"idx": torch.tensor(i)} for i in range(size)]
    generator = torch.Generator().manual_seed(0)
    sampler = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    return DataLoader(data, batch_size=batch, sampler=sampler)


def _ids(loader: Any) -> list[list[int]]:
    return [batch["idx"].tolist() for batch in loader]


def _order(size: int, batch: int) -> list[int]:
    """The shuffled order every process's copy of the seeded loader draws."""
    return [i for ids in _ids(_loader(size, batch, shuffle=True)) for i in ids]


def _sharded(loader: DataLoader, rank: int, sharding: ShardingOptions) -> ShardedDataLoader:
    return ShardedDataLoader(
        loader, CPU, num_processes=2, process_index=rank, limit=GatherLimit(), sharding=sharding
    )


def test_the_sharded_loader_splits_and_reports_the_global_batch() -> None:
    order = _order(8, 4)
    split = ShardingOptions(split_batches=True)
    first, second = (_sharded(_loader(8, 4, shuffle=True), rank, split) for rank in range(2))
    assert _ids(first) == [order[0:2], order[4:6]]
    assert _ids(second) == [order[2:4], order[6:8]]
    assert first.total_batch_size == 4 and len(first) == 2 and first.batch_size == 4
    assert _sharded(_loader(8, 4, shuffle=True), 0, ShardingOptions()).total_batch_size == 8


def test_even_batches_off_deals_the_last_training_step() -> None:
    order = _order(5, 2)
    uneven = ShardingOptions(even_batches=False)
    first, second = (_ids(_sharded(_loader(5, 2, shuffle=True), r, uneven)) for r in range(2))
    assert first[-1] == [order[4]]  # one real sample, not filled up to 2
    assert second[-1] == [order[0]]  # no real sample left: the one filler
    even = (_ids(_sharded(_loader(5, 2, shuffle=True), r, ShardingOptions())) for r in range(2))
    assert [part[-1] for part in even] == [[order[4], order[0]], [order[1], order[2]]]


def test_evaluation_loaders_are_dealt_exactly_under_split_batches() -> None:
    loader = _loader(7, 4, shuffle=False)
    limit = GatherLimit()
    sharded = ShardedDataLoader(
        loader,
        CPU,
        num_processes=2,
        process_index=1,
        limit=limit,
        sharding=ShardingOptions(split_batches=True),
    )
    windows = []
    for batch in sharded:
        windows.append((batch["idx"].tolist(), limit.window))
    assert windows == [([2, 3], None), ([6], StepWindow(real_rows=3, padded_rows=3))]


def test_split_batches_refuse_a_batch_the_processes_cannot_share() -> None:
    message = r"batch_size=3 into 2 equal slices.*multiple of 2"
    with pytest.raises(ValueError, match=message):
        _sharded(_loader(6, 3, shuffle=True), 0, ShardingOptions(split_batches=True))
    with pytest.raises(ValueError, match=message):
        DealtDataLoader(
            _loader(6, 3, shuffle=False),
            CPU,
            num_processes=2,
            process_index=0,
            limit=GatherLimit(),
            sharding=ShardingOptions(split_batches=True),
        )


def test_streams_under_split_batches_slice_every_batch() -> None:
    batches = [{"idx": torch.arange(4 * i, 4 * i + 4)} for i in range(2)]
    batches.append({"idx": torch.tensor([8]), "name": "last"})
    limit = GatherLimit()
    seen = []
    for rank in range(2):
        loader = DealtDataLoader(
            batches,
            CPU,
            num_processes=2,
            process_index=rank,
            limit=limit,
            sharding=ShardingOptions(split_batches=True),
        )
        seen.append([(b["idx"].tolist(), limit.window) for b in loader])
        assert len(loader) == 3 and loader.total_batch_size is None
    window = StepWindow(real_rows=1, padded_rows=2)
    assert seen[0] == [([0, 1], None), ([4, 5], None), ([8], window)]
    assert seen[1] == [([2, 3], None), ([6, 7], None), ([0], window)]  # the first row


# ------------------------------------------------------------------- the arguments
def _args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **overrides)


def test_accelerator_config_becomes_the_sharding_options(tmp_path: Path) -> None:
    config = {"split_batches": True, "even_batches": False, "dispatch_batches": True}
    args = _args(tmp_path, per_device_train_batch_size=4, accelerator_config=config)
    assert sharding_options(args, num_processes=2) == ShardingOptions(True, False)
    assert sharding_options(_args(tmp_path), num_processes=2) == ShardingOptions()
    with pytest.warns(FutureWarning, match="split_batches is deprecated"):
        old = _args(tmp_path, split_batches=True)
    assert sharding_options(old, num_processes=1).split_batches


@pytest.mark.parametrize(
    ("batch_sizes", "name"),
    [
        ({"per_device_train_batch_size": 3}, "per_device_train_batch_size=3"),
        ({"per_device_eval_batch_size": 5}, "per_device_eval_batch_size=5"),
    ],
)
def test_a_batch_two_processes_cannot_split_is_refused_before_any_group_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_sizes: dict[str, int], name: str
) -> None:
    args = _args(tmp_path, accelerator_config={"split_batches": True}, **batch_sizes)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=rf"{name} into 2 equal slices"):
        build_runtime(args)
    assert not torch.distributed.is_initialized()


def test_one_process_takes_any_batch_size_under_split_batches(tmp_path: Path) -> None:
    args = _args(
        tmp_path, per_device_train_batch_size=3, accelerator_config={"split_batches": True}
    )
    assert build_runtime(args).num_processes == 1


def test_deepspeed_micro_batches_are_the_slices_under_split_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = SimpleNamespace(
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        accelerator_config={"split_batches": True},
    )
    assert deepspeed_argument_values(args, {}).per_device_train_batch_size == 4
    args.accelerator_config = {}
    assert deepspeed_argument_values(args, {}).per_device_train_batch_size == 8


@pytest.mark.parametrize("config", [{"split_batches": True}, {"even_batches": False}])
def test_xla_fsdp_refuses_the_options_it_does_not_implement(config: dict[str, Any]) -> None:
    args = SimpleNamespace(fsdp="full_shard", fsdp_config={"xla": True}, accelerator_config=config)
    with pytest.raises(ValueError, match=r"not supported with XLA FSDP.*accelerator_config"):
        build_runtime(args)


class _ResumedSampler(SequentialSampler):
    """A pass started late (as a resumed run's sampler does) that knows its whole order."""

    def __init__(self, size: int, skip: int) -> None:
        super().__init__(range(size))
        self.pass_order = list(range(size))
        self.skip = skip

    def __iter__(self) -> Any:
        return iter(self.pass_order[self.skip :])


@pytest.mark.parametrize("split", [False, True])
def test_a_resumed_pass_fills_its_last_step_from_the_passs_start(split: bool) -> None:
    # 10 samples, 4 a step: the last step holds 2 real ones and 2 from the start (0, 1),
    # also when the pass resumed after 4 samples and never drew 0 and 1.
    base = BatchSampler(_ResumedSampler(10, skip=4), 2 if not split else 4, drop_last=False)
    last = [
        list(
            ShardedBatchSampler(
                base,
                batch_size=base.batch_size,
                num_processes=2,
                process_index=rank,
                drop_last=False,
                split_batches=split,
            )
        )[-1]
        for rank in range(2)
    ]
    assert last == [[8, 9], [0, 1]]
