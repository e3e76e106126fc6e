"""The folder store: atomic saves, discovery, rotation, safe loading, RNG round trips."""

from __future__ import annotations

import logging
import os
import pickle
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from trainer_checkpoint import (
    CheckpointNotFoundError,
    FolderCheckpointStore,
    NotACheckpointError,
    UnsafeCheckpointError,
    capture_rng_state,
    incomplete_folders,
    safe_load,
)
from trainer_core import CheckpointContent, CheckpointStore, TrainerState


def _parts(seed: int = 0) -> CheckpointContent:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return CheckpointContent(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        trainer_state=TrainerState(global_step=7),
    )


def test_the_store_satisfies_the_port() -> None:
    assert isinstance(FolderCheckpointStore(), CheckpointStore)


def test_save_writes_the_reference_file_names_and_load_restores_everything(tmp_path) -> None:
    store = FolderCheckpointStore()
    saved = _parts(0)
    saved.rng_extra = {"sampler": torch.Generator().manual_seed(5).get_state()}
    path = store.save(str(tmp_path), 7, saved)
    assert os.path.basename(path) == "checkpoint-7"
    names = set(os.listdir(path))
    expected = {
        "model.safetensors",
        "optimizer.pt",
        "scheduler.pt",
        "rng_state.pth",
        "trainer_state.json",
    }
    assert expected <= names
    restored = _parts(1)
    loaded = store.load(path, restored)
    for a, b in zip(
        saved.model.state_dict().values(), restored.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert restored.optimizer.state_dict()["state"][0]["step"] == 1
    assert restored.scheduler.last_epoch == 1
    assert loaded.trainer_state.global_step == 7
    assert torch.equal(loaded.rng_state["sampler"], saved.rng_extra["sampler"])


def test_rng_states_round_trip_through_a_checkpoint(tmp_path) -> None:
    store = FolderCheckpointStore()
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = store.save(str(tmp_path), 1, _parts())
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    store.restore_rng(store.load(path, CheckpointContent()).rng_state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_latest_skips_and_reports_incomplete_folders(tmp_path, caplog) -> None:
    store = FolderCheckpointStore()
    store.save(str(tmp_path), 2, _parts())
    (tmp_path / "checkpoint-9").mkdir()  # a save killed half way (another tool's)
    (tmp_path / ".tmp-checkpoint-5").mkdir()  # our staging folder after a crash
    (tmp_path / "checkpoint-x").mkdir()
    assert store.checkpoints(str(tmp_path)) == [str(tmp_path / "checkpoint-2")]
    assert store.latest(str(tmp_path)) == str(tmp_path / "checkpoint-2")
    assert str(tmp_path / "checkpoint-9") in caplog.text and ".tmp-checkpoint-5" in caplog.text
    assert len(incomplete_folders(str(tmp_path))) == 2


def test_saving_a_step_again_replaces_it(tmp_path) -> None:
    store = FolderCheckpointStore()
    store.save(str(tmp_path), 3, _parts(0))
    second = _parts(1)
    path = store.save(str(tmp_path), 3, second)
    target = _parts(2)
    store.load(path, target)
    assert torch.equal(target.model[0].weight, second.model[0].weight)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-3"]


def test_checkpoints_are_listed_by_step_not_by_name(tmp_path) -> None:
    store = FolderCheckpointStore()
    for step in (10, 9, 100):
        store.save(str(tmp_path), step, _parts())
    assert [os.path.basename(p) for p in store.checkpoints(str(tmp_path))] == [
        "checkpoint-9",
        "checkpoint-10",
        "checkpoint-100",
    ]


@pytest.mark.parametrize(
    ("limit", "keep", "left"),
    [
        (2, [], [4, 5]),
        (2, [1], [1, 5]),
        (1, [2], [2, 5]),
        (1, [1, 3], [1, 3, 5]),
        (0, [], [1, 2, 3, 4, 5]),
        (1, [], [5]),
        # the best checkpoint is the newest: it is the one folder limit=1 leaves
        (1, [5], [5]),
        (2, [5], [4, 5]),
        (3, [1], [1, 4, 5]),
    ],
)
def test_rotation_keeps_the_newest_and_the_protected(tmp_path, limit, keep, left) -> None:
    store = FolderCheckpointStore(fsync=False)
    for step in range(1, 6):
        store.save(
            str(tmp_path),
            step,
            CheckpointContent(model=nn.Linear(1, 1), trainer_state=TrainerState()),
        )
    store.rotate(str(tmp_path), limit, keep=[str(tmp_path / f"checkpoint-{k}") for k in keep])
    assert [int(p.rsplit("-", 1)[1]) for p in store.checkpoints(str(tmp_path))] == left


def test_rotation_logs_each_deletion_in_the_references_words(tmp_path, caplog) -> None:
    store = FolderCheckpointStore(fsync=False)
    for step in (1, 2):
        content = CheckpointContent(model=nn.Linear(1, 1), trainer_state=TrainerState())
        store.save(str(tmp_path), step, content)
    with caplog.at_level(logging.INFO, logger="trainer_checkpoint"):
        store.rotate(str(tmp_path), 1)
    oldest = tmp_path / "checkpoint-1"
    assert f"Deleting older checkpoint [{oldest}] due to args.save_total_limit" in caplog.text


def test_missing_and_non_checkpoint_folders_raise_clear_errors(tmp_path) -> None:
    store = FolderCheckpointStore()
    with pytest.raises(CheckpointNotFoundError, match="no such folder"):
        store.load(str(tmp_path / "nope"), CheckpointContent())
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(NotACheckpointError, match=r"not a complete checkpoint.*notes\.txt"):
        store.load(str(tmp_path), CheckpointContent())


class _Payload:
    """Unpickling this runs ``os.system`` (what a malicious checkpoint would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_payload_is_refused_not_executed(tmp_path) -> None:
    store = FolderCheckpointStore()
    path = store.save(str(tmp_path), 1, _parts())
    marker = tmp_path / "pwned"
    with open(os.path.join(path, "optimizer.pt"), "wb") as handle:
        pickle.dump({"state": _Payload(str(marker))}, handle, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match=r"Refusing to load .*optimizer\.pt"):
        store.load(path, _parts())
    assert not marker.exists()
    # The same payload in torch's own zip format is refused too.
    torch.save({"state": _Payload(str(marker))}, os.path.join(path, "scheduler.pt"))
    with pytest.raises(UnsafeCheckpointError):
        safe_load(os.path.join(path, "scheduler.pt"))
    assert not marker.exists()


def test_numpy_rng_state_is_the_one_allowed_non_tensor(tmp_path) -> None:
    torch.save(capture_rng_state(), tmp_path / "rng.pth")
    assert safe_load(tmp_path / "rng.pth")["numpy"][0] == "MT19937"


_DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys, torch
    from torch import nn
    from trainer_checkpoint import CheckpointSaveError, FolderCheckpointStore
    from trainer_core import CheckpointContent, TrainerState
    out = sys.argv[1]
    store = FolderCheckpointStore()
    small = CheckpointContent(model=nn.Linear(2, 2), trainer_state=TrainerState())
    store.save(out, 1, small)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    try:
        store.save(out, 2, CheckpointContent(model=nn.Linear(64, 64), trainer_state=TrainerState()))
    except CheckpointSaveError as error:
        print("ERROR:", error)
    """
)


def test_a_full_disk_raises_an_error_naming_the_path_and_keeps_earlier_checkpoints(
    tmp_path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ERROR: " in result.stdout and str(tmp_path / "checkpoint-2") in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1"]  # no staging folder left
    FolderCheckpointStore().load_model(str(tmp_path / "checkpoint-1"), nn.Linear(2, 2))


class _PretrainedLike(nn.Linear):
    """A model with its own save_pretrained, recording the options it was given."""

    def __init__(self) -> None:
        super().__init__(2, 2)
        self.options: dict = {}

    def save_pretrained(self, folder: str, state_dict=None, max_shard_size="50GB", **kw) -> None:
        self.options = {"max_shard_size": max_shard_size, **kw}
        torch.save(state_dict, os.path.join(folder, "pytorch_model.bin"))


def test_a_model_with_save_pretrained_shards_as_it_does_by_itself(tmp_path) -> None:
    """The reference's Trainer passes no shard size: a 7B model comes out in the model's
    own default layout, not cut at our 5GB (unless the store is told a size)."""
    model = _PretrainedLike()
    FolderCheckpointStore(fsync=False).save_model(
        str(tmp_path / "default"), CheckpointContent(model=model)
    )
    assert model.options["max_shard_size"] == "50GB"
    FolderCheckpointStore(fsync=False, max_shard_size="1GB").save_model(
        str(tmp_path / "told"), CheckpointContent(model=model)
    )
    assert model.options["max_shard_size"] == "1GB"


def test_a_second_writer_of_shared_storage_finds_the_checkpoint_published(tmp_path) -> None:
    """save_on_each_node on storage the nodes share: a stale directory listing may let
    two writers elect themselves; the second finds the folder in place, not an error."""
    store = FolderCheckpointStore()
    final, staging = tmp_path / "checkpoint-2", tmp_path / ".tmp-checkpoint-2"
    staging.mkdir()
    (staging / "trainer_state.json").write_text("{}")
    (staging / ".writer-0").touch()
    store._publish_shared(str(staging), str(final))  # the first writer
    store._publish_shared(str(staging), str(final))  # the second: already published
    assert sorted(p.name for p in final.iterdir()) == ["trainer_state.json"]
    missing = tmp_path / "checkpoint-4"
    with pytest.raises(FileNotFoundError):  # nothing published by anyone: a real failure
        store._publish_shared(str(tmp_path / ".tmp-checkpoint-4"), str(missing))
