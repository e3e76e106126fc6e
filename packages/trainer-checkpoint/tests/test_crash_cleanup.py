"""Deleting checkpoints crash-safely, and cleaning up what interrupted saves and deletions
left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from trainer_checkpoint import FolderCheckpointStore, NotACheckpointError, is_complete
from trainer_core import CheckpointContent, TrainerState


class _Args:
    """What the Trainer passes as ``training_args`` (only the JSON form matters here)."""

    def to_json_string(self) -> str:
        return json.dumps({"save_only_model": False})


def _resumable(seed: int = 0) -> CheckpointContent:
    torch.manual_seed(seed)
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return CheckpointContent(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1),
        trainer_state=TrainerState(),
        training_args=_Args(),
    )


def _save(store: FolderCheckpointStore, out: str, *steps: int) -> None:
    for step in steps:
        store.save(out, step, _resumable(step))


# Rotation killed while it deletes checkpoint-1: the rmtree of the folder removes every
# file but optimizer.pt, then the process is SIGKILLed (as the audit's repro does).
_KILLED_ROTATION = textwrap.dedent(
    """
    import os, signal, sys
    import trainer_checkpoint._folders as folders
    from trainer_checkpoint import FolderCheckpointStore

    def dying_rmtree(path, ignore_errors=False):
        for name in sorted(os.listdir(path)):
            if name != "optimizer.pt":
                os.unlink(os.path.join(path, name))
        os.kill(os.getpid(), signal.SIGKILL)

    folders.shutil.rmtree = dying_rmtree
    FolderCheckpointStore(fsync=False).rotate(sys.argv[1], 1)
    """
)


def test_a_kill_during_rotation_leaves_no_partial_checkpoint_and_is_cleaned_up(
    tmp_path, caplog
) -> None:
    out = str(tmp_path)
    store = FolderCheckpointStore(fsync=False)
    _save(store, out, 1, 2)
    result = subprocess.run([sys.executable, "-c", _KILLED_ROTATION, out], check=False)
    assert result.returncode == -signal.SIGKILL
    names = sorted(os.listdir(out))
    assert names[-1] == "checkpoint-2" and "checkpoint-1" not in names
    assert [n for n in names if n.startswith(".tmp-deleting-checkpoint-1-")]  # hidden leftover
    assert store.latest(out) == os.path.join(out, "checkpoint-2")
    assert "Ignoring" not in caplog.text  # the leftover is no checkpoint to report
    _save(store, out, 3)
    store.rotate(out, 1)
    assert sorted(os.listdir(out)) == ["checkpoint-3"]


def test_folders_cut_short_by_an_in_place_deletion_are_not_complete(tmp_path) -> None:
    out = str(tmp_path)
    store = FolderCheckpointStore(fsync=False)
    _save(store, out, 1, 2, 3)
    os.remove(tmp_path / "checkpoint-1" / "optimizer.pt")  # state and weights remain
    for name in os.listdir(tmp_path / "checkpoint-2"):
        if name != "optimizer.pt":
            os.remove(tmp_path / "checkpoint-2" / name)
    assert not is_complete(str(tmp_path / "checkpoint-1"))
    assert store.checkpoints(out) == [os.path.join(out, "checkpoint-3")]
    with pytest.raises(NotACheckpointError, match=r"lacks optimizer\.pt"):
        store.load(str(tmp_path / "checkpoint-1"), _resumable())


def test_save_only_model_checkpoints_stay_complete(tmp_path) -> None:
    class OnlyModel:
        def to_json_string(self) -> str:
            return json.dumps({"save_only_model": True})

    content = CheckpointContent(
        model=nn.Linear(2, 2), trainer_state=TrainerState(), training_args=OnlyModel()
    )
    path = FolderCheckpointStore(fsync=False).save(str(tmp_path), 4, content)
    assert is_complete(path)


def test_a_sharded_weights_index_needs_every_shard(tmp_path) -> None:
    store = FolderCheckpointStore(fsync=False, max_shard_size=16)
    path = store.save(str(tmp_path), 1, _resumable())
    shards = sorted(n for n in os.listdir(path) if n.startswith("model-"))
    assert len(shards) > 1 and is_complete(path)
    os.remove(os.path.join(path, shards[0]))
    assert not is_complete(path)


def test_rotation_removes_older_leftovers_but_spares_protected_and_newer_ones(tmp_path) -> None:
    out = str(tmp_path)
    store = FolderCheckpointStore(fsync=False)
    _save(store, out, 1, 2, 3, 4)
    for step in (1, 2):  # both lose their optimizer state; checkpoint-2 is protected
        os.remove(tmp_path / f"checkpoint-{step}" / "optimizer.pt")
    (tmp_path / "checkpoint-9").mkdir()  # newer than every complete one: left alone
    (tmp_path / ".tmp-checkpoint-2").mkdir()  # a staging folder of a crashed save
    (tmp_path / ".tmp-deleting-checkpoint-3-0123abcd").mkdir()
    store.rotate(out, 1, keep=[str(tmp_path / "checkpoint-2")])
    assert sorted(os.listdir(out)) == ["checkpoint-2", "checkpoint-4", "checkpoint-9"]


def test_incomplete_older_folders_count_towards_the_limit_and_are_not_deleted_below_it(
    tmp_path,
) -> None:
    """A user slims older checkpoints to their weights (removes optimizer.pt): a later
    rotation with room for them keeps them, as the reference does; over the limit they
    go oldest first, like complete ones."""
    out = str(tmp_path)
    store = FolderCheckpointStore(fsync=False)
    _save(store, out, 2, 4, 6)
    for step in (2, 4):
        os.remove(tmp_path / f"checkpoint-{step}" / "optimizer.pt")
    _save(store, out, 8)
    assert store.rotate(out, 10) == []
    assert sorted(os.listdir(out)) == [f"checkpoint-{s}" for s in (2, 4, 6, 8)]
    assert store.rotate(out, 3) == [os.path.join(out, "checkpoint-2")]
    assert sorted(os.listdir(out)) == ["checkpoint-4", "checkpoint-6", "checkpoint-8"]
