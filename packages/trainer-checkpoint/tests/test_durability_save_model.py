"""``save_model`` into a folder that holds another model's weights: no stale file is read,
and a save that fails or is killed midway leaves the earlier model whole."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import trainer_checkpoint._durable as durable
from trainer_checkpoint import FolderCheckpointStore, read_weights
from trainer_checkpoint._model_folder import SAVE_STAGING_PREFIX
from trainer_core import CheckpointContent


def _model(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(width, width), nn.Linear(width, 2))


class _Args:
    """What the Trainer passes as ``training_args`` (only the JSON form matters here)."""

    def to_json_string(self) -> str:
        return json.dumps({"output_dir": "out"})


def _same(stored: dict[str, torch.Tensor], model: nn.Module) -> bool:
    expected = model.state_dict()
    return stored.keys() == expected.keys() and all(
        torch.equal(stored[k], v) for k, v in expected.items()
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"max_shard_size": 100}, {}),  # shards (+ index), then one file
        ({}, {"max_shard_size": 100}),  # one file, then shards: the old file was read first
        ({}, {"safe_serialization": False}),  # safetensors, then pickle: the same
        ({"safe_serialization": False}, {}),
    ],
    ids=["shards-then-file", "file-then-shards", "safetensors-then-bin", "bin-then-safetensors"],
)
def test_saving_over_another_model_leaves_only_its_weight_files(tmp_path, first, second) -> None:
    folder = str(tmp_path)
    big, small = _model(8, 0), _model(4, 1)
    FolderCheckpointStore(**first).save_model(folder, CheckpointContent(model=big))
    FolderCheckpointStore(**second).save_model(folder, CheckpointContent(model=small))
    assert _same(read_weights(folder), small)
    names = sorted(os.listdir(folder))
    written = {"model", "pytorch_model"} & {n.split(".")[0].split("-")[0] for n in names}
    assert len(written) == 1, names  # one format, one layout
    assert not [n for n in names if n.startswith(".")], names


def test_a_failed_save_model_puts_the_earlier_weights_back(tmp_path, monkeypatch) -> None:
    folder = str(tmp_path)
    earlier, later = _model(4, 0), _model(4, 1)
    FolderCheckpointStore().save_model(folder, CheckpointContent(model=earlier))

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)

    monkeypatch.setattr(durable.DurableFile, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        FolderCheckpointStore().save_model(folder, CheckpointContent(model=later))
    monkeypatch.undo()
    assert _same(read_weights(folder), earlier)
    assert os.listdir(folder) == ["model.safetensors"]


# A process killed in the middle of save_model: the first write into the new weight file
# writes half of what it was given, then the process is SIGKILLed.
_KILLED_WHILE_WRITING = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from torch import nn
    import trainer_checkpoint._durable as durable
    from trainer_checkpoint import FolderCheckpointStore
    from trainer_core import CheckpointContent

    def dying_write(self, data):
        view = memoryview(data).cast("B")
        os.write(self.fd, view[: len(view) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    durable.DurableFile.write = dying_write
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    FolderCheckpointStore().save_model(sys.argv[1], CheckpointContent(model=model))
    """
)

# Killed in the instant between moving the earlier weights aside and moving its own in.
_KILLED_WHILE_MOVING_IN = textwrap.dedent(
    """
    import os, signal, sys
    from torch import nn
    import trainer_checkpoint._model_folder as model_folder
    from trainer_checkpoint import FolderCheckpointStore
    from trainer_core import CheckpointContent

    set_aside = model_folder._set_aside_weights

    def set_aside_and_die(folder):
        set_aside(folder)
        os.kill(os.getpid(), signal.SIGKILL)

    model_folder._set_aside_weights = set_aside_and_die
    FolderCheckpointStore().save_model(sys.argv[1], CheckpointContent(model=nn.Linear(4, 2)))
    """
)


def _killed(script: str, folder: str) -> None:
    result = subprocess.run([sys.executable, "-c", script, folder], check=False)
    assert result.returncode == -signal.SIGKILL, result


def test_a_save_model_killed_while_writing_leaves_the_earlier_model_whole(tmp_path) -> None:
    folder = str(tmp_path)
    earlier = _model(8, 0)
    FolderCheckpointStore(max_shard_size=100).save_model(folder, CheckpointContent(model=earlier))
    shards = sorted(os.listdir(folder))
    _killed(_KILLED_WHILE_WRITING, folder)

    assert _same(read_weights(folder), earlier)  # every shard and the index untouched
    hidden = [n for n in sorted(os.listdir(folder)) if n.startswith(".")]
    assert sorted(set(os.listdir(folder)) - set(hidden)) == shards
    assert len(hidden) == 1 and hidden[0].startswith(SAVE_STAGING_PREFIX)
    assert os.listdir(os.path.join(folder, hidden[0]))  # the half-written file is in there

    later = _model(4, 1)
    FolderCheckpointStore().save_model(folder, CheckpointContent(model=later))
    assert _same(read_weights(folder), later)
    assert sorted(os.listdir(folder)) == ["model.safetensors"]  # the dead save's folder went


def test_weights_a_killed_save_had_moved_aside_come_back(tmp_path) -> None:
    folder = str(tmp_path)
    earlier = _model(4, 0)
    FolderCheckpointStore().save_model(folder, CheckpointContent(model=earlier))
    _killed(_KILLED_WHILE_MOVING_IN, folder)
    assert not os.path.exists(os.path.join(folder, "model.safetensors"))

    # A save without weights (the arguments alone) finds them hidden and puts them back.
    FolderCheckpointStore().save_model(folder, CheckpointContent(training_args=_Args()))
    assert _same(read_weights(folder), earlier)
    assert not [n for n in os.listdir(folder) if n.startswith(".")]
    assert "training_args.json" in os.listdir(folder)


def test_hidden_folders_of_live_writers_and_other_hosts_are_left_alone(tmp_path) -> None:
    folder = str(tmp_path)
    host = socket.gethostname()
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        try:
            kept = [
                f"{SAVE_STAGING_PREFIX}{host}-{live.pid}-0123abcd",  # another writer, saving
                f"{SAVE_STAGING_PREFIX}other-host-{os.getpid()}-0123abcd",  # on other storage
                f"{SAVE_STAGING_PREFIX}{host}-{os.getpid()}-0123abcd",  # this process's own
            ]
            for name in kept:
                os.mkdir(os.path.join(folder, name))
            FolderCheckpointStore().save_model(folder, CheckpointContent(model=_model(4, 0)))
        finally:
            live.kill()
    assert sorted(os.listdir(folder)) == sorted([*kept, "model.safetensors"])


def test_a_sub_folder_save_pretrained_writes_is_replaced_whole(tmp_path) -> None:
    class TwoAdapters(nn.Linear):
        """Writes its second adapter into a sub-folder, as PEFT's save_pretrained does."""

        def __init__(self, files: list[str]) -> None:
            super().__init__(2, 2)
            self.files = files

        def save_pretrained(self, folder: str, **_: object) -> None:
            os.makedirs(os.path.join(folder, "second"))
            for name in self.files:
                with open(os.path.join(folder, "second", name), "w") as handle:
                    handle.write(name)

    folder = str(tmp_path)
    FolderCheckpointStore().save_model(folder, CheckpointContent(model=TwoAdapters(["a", "b"])))
    FolderCheckpointStore().save_model(folder, CheckpointContent(model=TwoAdapters(["c"])))
    assert os.listdir(os.path.join(folder, "second")) == ["c"]
    assert not [n for n in os.listdir(folder) if n.startswith(".")]


def test_a_model_card_save_pretrained_updates_keeps_what_it_held(tmp_path) -> None:
    class TaggingModel(nn.Linear):
        """Adds a line to an existing README.md, as PEFT's save_pretrained adds its tags."""

        def save_pretrained(self, folder: str, **_: object) -> None:
            card = Path(folder) / "README.md"
            earlier = card.read_text() if card.exists() else ""
            card.write_text(earlier + "library_name: peft\n")

    folder = tmp_path
    (folder / "README.md").write_text("# The Trainer's model card\n")
    FolderCheckpointStore().save_model(str(folder), CheckpointContent(model=TaggingModel(2, 2)))
    assert (folder / "README.md").read_text() == "# The Trainer's model card\nlibrary_name: peft\n"
    FolderCheckpointStore().save_model(str(folder), CheckpointContent(model=nn.Linear(2, 2)))
    assert (folder / "README.md").read_text() == "# The Trainer's model card\nlibrary_name: peft\n"


# Killed while it moves the earlier weights aside, after the first of them: the index of
# the earlier, sharded model goes first, so the folder no longer counts as holding a model
# and the next save puts every shard back instead of deleting the only copy of one.
_KILLED_WHILE_SETTING_ASIDE = textwrap.dedent(
    """
    import os, signal, sys
    from torch import nn
    import trainer_checkpoint._model_folder as model_folder
    from trainer_checkpoint import FolderCheckpointStore
    from trainer_core import CheckpointContent

    real_replace = os.replace

    def replace_once_then_die(source, target):
        real_replace(source, target)
        if model_folder._ASIDE_PREFIX in target:
            os.kill(os.getpid(), signal.SIGKILL)

    model_folder.os.replace = replace_once_then_die
    FolderCheckpointStore().save_model(sys.argv[1], CheckpointContent(model=nn.Linear(4, 2)))
    """
)


def test_a_kill_while_the_earlier_shards_move_aside_loses_none_of_them(tmp_path) -> None:
    folder = str(tmp_path)
    earlier = _model(8, 0)
    FolderCheckpointStore(max_shard_size=100).save_model(folder, CheckpointContent(model=earlier))
    _killed(_KILLED_WHILE_SETTING_ASIDE, folder)
    assert "model.safetensors.index.json" not in os.listdir(folder)  # moved first

    FolderCheckpointStore().save_model(folder, CheckpointContent(training_args=_Args()))
    assert _same(read_weights(folder), earlier)
    assert not [n for n in os.listdir(folder) if n.startswith(".")]


def test_a_symbolic_link_to_a_sub_folder_is_replaced_by_the_new_folder(tmp_path) -> None:
    class Adapters(nn.Linear):
        def save_pretrained(self, folder: str, **_: object) -> None:
            os.makedirs(os.path.join(folder, "second"))
            Path(folder, "second", "adapter.json").write_text("{}")

    folder, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.mkdir()
    (folder / "second").symlink_to(elsewhere, target_is_directory=True)
    FolderCheckpointStore().save_model(str(folder), CheckpointContent(model=Adapters(2, 2)))
    assert not (folder / "second").is_symlink()
    assert os.listdir(folder / "second") == ["adapter.json"]
    assert os.path.isdir(elsewhere)  # what the link pointed at is left alone


# Two writers saving the same model into one folder at once, over and over, as the main
# processes of two nodes do under save_on_each_node on shared storage. The files are
# small and both start at the same moment, so that their renames interleave.
_SAVING_IN_A_LOOP = textwrap.dedent(
    """
    import os, sys, time
    from trainer_checkpoint._model_folder import save_into_folder

    def write(staging):
        for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                     "model.safetensors.index.json", "adapter_config.json"):
            with open(os.path.join(staging, name), "w") as handle:
                handle.write(name)
        for sub in ("second", "third"):
            os.mkdir(os.path.join(staging, sub))
            with open(os.path.join(staging, sub, "adapter_config.json"), "w") as handle:
                handle.write(sub)

    folder, saves, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    while time.time() < start:
        pass
    for _ in range(saves):
        save_into_folder(folder, write, replaces_weights=True)
    """
)


@pytest.mark.slow
def test_two_writers_saving_into_one_folder_at_once_both_succeed(tmp_path) -> None:
    folder, start = str(tmp_path), f"{time.time() + 3:.3f}"
    writers = [
        subprocess.Popen([sys.executable, "-c", _SAVING_IN_A_LOOP, folder, "400", start])
        for _ in range(2)
    ]
    assert [writer.wait(timeout=240) for writer in writers] == [0, 0]
    names = sorted(os.listdir(folder))
    assert names == [
        "adapter_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "second",
        "third",
    ]
    assert [os.listdir(tmp_path / sub) for sub in ("second", "third")] == [
        ["adapter_config.json"]
    ] * 2


def test_another_hosts_day_old_leftover_is_named_not_deleted(tmp_path, caplog) -> None:
    old, recent = (tmp_path / f"{SAVE_STAGING_PREFIX}other-host-{n}-0123abcd" for n in (1234, 5678))
    for path in (old, recent):
        path.mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    with caplog.at_level("WARNING", logger="trainer_checkpoint"):
        FolderCheckpointStore().save_model(str(tmp_path), CheckpointContent(model=_model(4, 0)))
    assert old.is_dir() and recent.is_dir()
    assert str(old) in caplog.text and "another host" in caplog.text
    assert str(recent) not in caplog.text
