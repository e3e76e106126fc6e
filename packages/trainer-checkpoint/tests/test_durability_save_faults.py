"""A save that fails at any file operation: earlier checkpoints stay whole and loadable.

Each test first counts the file operations (creating, writing, flushing, renaming) one
save makes, then repeats the save once per operation with that operation failing as on a
full disk (``ENOSPC``). The same step saved a second time is included: its earlier folder
must survive a failed replacement. Flushing is slow, so the flushes (``fsync``) fail in a
run of their own. Writes done in C (torch's zip writer) are made to fail for real, with
``RLIMIT_FSIZE``, by integration_tests/test_fault_disk.py.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import io
import json
import os
import shutil

import pytest
import torch
from torch import nn

import trainer_checkpoint._publish as publish_module
from trainer_checkpoint import (
    CheckpointSaveError,
    FolderCheckpointStore,
    get_last_checkpoint,
    is_complete,
)
from trainer_core import CheckpointContent, TrainerState


class _Args:
    def to_json_string(self) -> str:
        return json.dumps({"save_only_model": False})


def _content(seed: int) -> CheckpointContent:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    return CheckpointContent(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1),
        trainer_state=TrainerState(global_step=seed),
        training_args=_Args(),
    )


class _FullDisk:
    """Counts file operations; the ``fail_at``-th raises ENOSPC, as a full disk would."""

    _OS = ("open", "write", "fsync", "replace", "rename", "mkdir")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, only_fsync: bool) -> None:
        self.calls, self.fail_at, self.failed, self.seen = 0, 0, "", []
        real = {name: getattr(os, name) for name in self._OS}
        real_open = builtins.open
        self.only_fsync = only_fsync

        written: set[int] = set()  # descriptors written to: later writes fail alike

        def counted(name):
            def call(*args, **kwargs):
                writes = name != "open" or args[1] & (os.O_WRONLY | os.O_RDWR)
                first = name != "write" or args[0] not in written
                if writes and first and (name == "fsync") == self.only_fsync:
                    self._hit(f"os.{name}")
                result = real[name](*args, **kwargs)
                if name == "open":
                    written.discard(result)
                elif name == "write":
                    written.add(args[0])
                return result

            return call

        def opened(file, mode="r", *args, **kwargs):
            if any(flag in mode for flag in "wax+") and not self.only_fsync:
                self._hit(f"open({os.path.basename(str(file))})")
            return real_open(file, mode, *args, **kwargs)

        for name in self._OS:
            monkeypatch.setattr(os, name, counted(name))
        monkeypatch.setattr(builtins, "open", opened)
        monkeypatch.setattr(io, "open", opened)

    def fail_exchanges(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Count (and fail) the atomic exchange too: a C call, invisible to ``os``."""
        real = publish_module._renameat2

        def exchange(*args):
            try:
                self._hit("renameat2")
            except OSError:
                ctypes.set_errno(errno.ENOSPC)
                return -1
            return real(*args)

        monkeypatch.setattr(publish_module, "_renameat2", exchange)

    def _hit(self, what: str) -> None:
        self.calls += 1
        self.seen.append(what)
        if self.calls == self.fail_at:
            self.failed = what
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _weight(path: str) -> torch.Tensor:
    model = nn.Linear(3, 2)
    FolderCheckpointStore().load(path, CheckpointContent(model=model))
    return model.weight.detach().clone()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("step", "can_exchange", "fsync"),
    [(2, True, False), (1, True, False), (1, False, False), (1, True, True)],
    ids=["new-step", "same-step-again", "same-step-again-two-renames", "flushes-same-step"],
)
def test_a_failure_at_any_file_operation_keeps_the_earlier_checkpoints(
    tmp_path, monkeypatch, step, can_exchange, fsync
) -> None:
    if not can_exchange:  # as on a system or file system without renameat2
        monkeypatch.setattr(publish_module, "_renameat2", None)
    store = FolderCheckpointStore(fsync=fsync)
    out = str(tmp_path / "run")
    earlier = _weight_of_seed(1)
    new = _weight_of_seed(2)
    disk = _FullDisk(monkeypatch, only_fsync=fsync)
    if can_exchange and publish_module._renameat2 is not None and not fsync:
        disk.fail_exchanges(monkeypatch)
    final = os.path.join(out, f"checkpoint-{step}")
    store.save(out, 1, _content(1))
    disk.calls, disk.seen = 0, []
    store.save(out, step, _content(2))  # counts the operations of one save
    operations = disk.calls
    assert operations > (5 if fsync else 12)
    for fail_at in range(1, operations + 1):
        _reset(out, store, disk)
        disk.calls, disk.fail_at, disk.failed = 0, fail_at, ""
        try:
            store.save(out, step, _content(2))
        except CheckpointSaveError as error:
            assert final in str(error) and "No space left on device" in str(error), error
            assert error.errno == errno.ENOSPC
        finally:
            disk.fail_at = 0
        context = f"failing {disk.failed} (operation {fail_at} of {operations})"
        assert disk.failed, context  # the operation was made, and failed
        names = sorted(os.listdir(out))
        assert not [n for n in names if n.startswith(".")], context  # staging removed
        assert is_complete(os.path.join(out, "checkpoint-1")), context
        latest = get_last_checkpoint(out)
        assert latest is not None and is_complete(latest), context
        if step == 2 and latest == os.path.join(out, "checkpoint-1"):
            assert torch.equal(_weight(latest), earlier), context
        else:  # the failure came after the rename, or the same step was replaced
            assert any(torch.equal(_weight(latest), w) for w in (earlier, new)), context


def _weight_of_seed(seed: int) -> torch.Tensor:
    return _content(seed).model.weight.detach().clone()


def _reset(out: str, store: FolderCheckpointStore, disk: _FullDisk) -> None:
    """Only checkpoint-1 in ``out`` (written with no failure)."""
    disk.fail_at = 0
    shutil.rmtree(out, ignore_errors=True)
    store.save(out, 1, _content(1))
