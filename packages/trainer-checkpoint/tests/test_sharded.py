"""Sharded checkpoints in the folder store: the writer hook, the marker, completeness."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

from trainer_checkpoint import (
    SHARDED_STATE_NAME,
    FolderCheckpointStore,
    has_sharded_state,
    is_complete,
)
from trainer_core import CheckpointContent, TrainerState


def _sharded_content() -> CheckpointContent:
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return CheckpointContent(
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1),
        trainer_state=TrainerState(global_step=4),
    )


class _ShardWriter:
    """Writes one "shard" file per call and remembers the folders it was given."""

    def __init__(self, rank: int = 0) -> None:
        self.rank = rank
        self.folders: list[str] = []

    def __call__(self, folder: str) -> None:
        self.folders.append(folder)
        os.makedirs(os.path.join(folder, "shards"), exist_ok=True)
        with open(os.path.join(folder, "shards", f"part{self.rank}"), "w") as handle:
            handle.write("shard")


def test_the_writer_fills_the_staging_folder_which_is_then_published(tmp_path) -> None:
    store = FolderCheckpointStore(num_processes=2)
    writer = _ShardWriter()
    path = store.save(str(tmp_path), 4, _sharded_content(), sharded_writer=writer)
    assert writer.folders == [str(tmp_path / ".tmp-checkpoint-4")]  # the folder being built
    names = set(os.listdir(path))
    assert {"shards", SHARDED_STATE_NAME, "scheduler.pt", "trainer_state.json"} <= names
    assert "rng_state_0.pth" in names  # a resumable checkpoint: RNG states included
    assert not names & {"model.safetensors", "optimizer.pt"}
    assert json.loads((tmp_path / "checkpoint-4" / SHARDED_STATE_NAME).read_text()) == {
        "num_processes": 2
    }
    assert store.is_sharded(path) and is_complete(path)
    assert store.latest(str(tmp_path)) == path
    loaded = store.load(path, CheckpointContent())  # state, RNG; shards are the runtime's
    assert loaded.trainer_state.global_step == 4 and loaded.rng_state is not None


def test_sharded_checkpoints_rotate_like_the_others(tmp_path) -> None:
    store = FolderCheckpointStore(fsync=False)
    for step in (1, 2, 3):
        store.save(str(tmp_path), step, _sharded_content(), sharded_writer=_ShardWriter())
    store.rotate(str(tmp_path), 2)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-3"]


def test_a_failing_shard_writer_leaves_no_checkpoint(tmp_path) -> None:
    store = FolderCheckpointStore()

    def broken(folder: str) -> None:
        raise RuntimeError("the runtime could not gather its shards")

    with pytest.raises(RuntimeError, match="could not gather"):  # not a disk error: as is
        store.save(str(tmp_path), 1, _sharded_content(), sharded_writer=broken)
    assert os.listdir(tmp_path) == []


def test_a_process_that_cannot_see_the_folder_writes_nothing(tmp_path) -> None:
    # A non-writer on a node without shared storage: the writer's staging folder is on
    # another disk, so this process leaves no RNG file (nor folder) behind.
    store = FolderCheckpointStore(num_processes=2)
    store.save(str(tmp_path / "node1"), 4, _sharded_content(), process_index=1, is_writer=False)
    assert not (tmp_path / "node1").exists()


def test_every_process_writes_its_shards_and_rng_file_between_the_barriers(tmp_path) -> None:
    # Two processes played in order: the writer's staging folder is shared storage here.
    store = FolderCheckpointStore(num_processes=2)
    staging = tmp_path / ".tmp-checkpoint-4"
    replica = _ShardWriter(rank=1)

    def barrier() -> None:
        if staging.is_dir() and not replica.folders:  # the replica's turn, after the writer's
            replica(str(staging))
            store._write_rng(str(staging), _sharded_content(), 1)

    path = store.save(
        str(tmp_path), 4, _sharded_content(), barrier=barrier, sharded_writer=_ShardWriter(0)
    )
    assert sorted(os.listdir(os.path.join(path, "shards"))) == ["part0", "part1"]
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(os.listdir(path))


def test_reference_sharded_layouts_count_as_complete(tmp_path) -> None:
    dcp = tmp_path / "checkpoint-1"
    (dcp / "pytorch_model_fsdp_0").mkdir(parents=True)
    TrainerState().save_to_json(str(dcp / "trainer_state.json"))
    assert not is_complete(str(dcp))  # shards without DCP's .metadata: interrupted
    (dcp / "pytorch_model_fsdp_0" / ".metadata").write_bytes(b"")
    assert has_sharded_state(str(dcp)) and is_complete(str(dcp))
    deepspeed = tmp_path / "checkpoint-2"
    (deepspeed / "global_step2").mkdir(parents=True)
    TrainerState().save_to_json(str(deepspeed / "trainer_state.json"))
    assert not is_complete(str(deepspeed))
    (deepspeed / "latest").write_text("global_step2")  # DeepSpeed's tag, written last
    assert is_complete(str(deepspeed))


def test_full_checkpoints_are_not_sharded(tmp_path) -> None:
    store = FolderCheckpointStore()
    path = store.save(
        str(tmp_path), 1, CheckpointContent(model=nn.Linear(1, 1), trainer_state=TrainerState())
    )
    assert not store.is_sharded(path)
