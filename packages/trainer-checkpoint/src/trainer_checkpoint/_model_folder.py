"""``save_model`` into a folder that already holds a model: never a moment without a whole one.

``save_model``'s folder is the user's own (``output_dir``: the final model beside the
checkpoints and logs), so it cannot be built elsewhere and renamed into place as a
checkpoint is. Its files are written into a hidden staging folder inside it instead (the
slow part: all the weights) and moved in by renames once every one is written. A process
killed while it writes leaves the earlier model untouched; the next save into that folder
removes what the dead process left.

The earlier model's weight files (any layout: one file, shards, index, safetensors or
pickle) move aside before the new ones move in: a different layout would otherwise leave
a stale file that loaders read first (the single file wins over shards, in
``from_pretrained`` and here). If moving in fails they are put back.

A writer that updates a file already in the folder rather than replacing it finds it in
the staging folder too: PEFT's ``save_pretrained`` adds its tags to an existing
``README.md`` (the Trainer's model card) and would otherwise replace the card with a
fresh one.

Two writers may save into one folder at once (``save_on_each_node`` on shared storage):
hidden folders carry their writer's host and process id, and only those of a process that
no longer runs on this host are cleaned up (those of other hosts are named in a warning
once they are a day old); a file the other writer moved first is no error, as both
write the same model.

This guards against a killed process, not a power cut: nothing is flushed to the disk
before the renames (the checkpoints are, see ``_durable``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable

from trainer_checkpoint._weights import has_weights, weight_files

__all__ = ["SAVE_STAGING_PREFIX", "save_into_folder"]

logger = logging.getLogger(__name__)

SAVE_STAGING_PREFIX = ".tmp-save-model-"
_ASIDE_PREFIX = ".tmp-previous-weights-"
_UPDATED_IN_PLACE = ("README.md",)  # files a writer reads back and updates
_STALE_AFTER_S = 24 * 3600  # another host's hidden folder this old is named in a warning


def save_into_folder(folder: str, write: Callable[[str], None], *, replaces_weights: bool) -> None:
    """Call ``write(staging)`` to write a model's files, then move them into ``folder``.

    ``replaces_weights``: the files include model weights, so the earlier model's weight
    files leave ``folder`` (a save of only a processing class or arguments keeps them).
    """
    os.makedirs(folder, exist_ok=True)
    _clean_up_after_dead_writers(folder)
    staging = _hidden_folder(folder, SAVE_STAGING_PREFIX)
    try:
        for name in _UPDATED_IN_PLACE:
            if os.path.isfile(os.path.join(folder, name)):
                shutil.copy2(os.path.join(folder, name), os.path.join(staging, name))
        write(staging)
        _move_in(staging, folder, replaces_weights=replaces_weights)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(staging: str, folder: str, *, replaces_weights: bool) -> None:
    earlier = _set_aside_weights(folder) if replaces_weights else None
    try:
        # Sorted, an index (``model.safetensors.index.json``) comes after its shards.
        for name in sorted(os.listdir(staging)):
            _place(os.path.join(staging, name), os.path.join(folder, name), staging)
    except BaseException:
        if earlier is not None:
            _put_back(earlier, folder)
        raise
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)


def _place(source: str, target: str, staging: str) -> None:
    """Rename ``source`` to ``target``; a folder (a second PEFT adapter's) replaces the
    earlier one whole, moved into ``staging`` to be deleted with it."""
    if os.path.isdir(source) or os.path.isdir(target):
        earlier = os.path.join(staging, f"previous-{uuid.uuid4().hex}")
        with contextlib.suppress(FileNotFoundError):  # none, or another writer moved it
            os.replace(target, earlier)  # a symbolic link moves as the link itself
    try:
        os.replace(source, target)
    except OSError as error:
        # Another writer placed its copy of this folder in between: the same model's.
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not os.path.isdir(target):
            raise


def _set_aside_weights(folder: str) -> str | None:
    names = weight_files(folder)  # the index or single file first
    if not names:
        return None
    aside = _hidden_folder(folder, _ASIDE_PREFIX)
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # another writer moved it aside
            os.replace(os.path.join(folder, name), os.path.join(aside, name))
    return aside


def _put_back(aside: str, folder: str) -> None:
    """Move the weights in ``aside`` back; the index or single file last."""
    for name in reversed(weight_files(aside)):
        os.replace(os.path.join(aside, name), os.path.join(folder, name))
    shutil.rmtree(aside, ignore_errors=True)


def _hidden_folder(folder: str, prefix: str) -> str:
    path = os.path.join(
        folder, f"{prefix}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    os.mkdir(path)
    return path


def _clean_up_after_dead_writers(folder: str) -> None:
    """Remove the staging folders of saves killed midway, and put back earlier weights a
    save killed before its own were in place had left hidden."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        prefix = next((p for p in (SAVE_STAGING_PREFIX, _ASIDE_PREFIX) if name.startswith(p)), None)
        if prefix is None or not os.path.isdir(path):
            continue
        writer = _writer_state(name[len(prefix) :])
        if writer == "elsewhere":
            _warn_if_stale(path)
        if writer != "gone":
            continue
        if prefix == _ASIDE_PREFIX and not has_weights(folder):
            logger.warning(
                "Restoring the model weights in %s that an interrupted save had moved aside.", path
            )
            # Shards of the killed save's own model, without their index, may be there
            # too: the earlier ones take their names, and the next save clears the rest.
            _put_back(path, folder)
        else:
            logger.info("Removing %s, left by an interrupted save_model.", path)
            shutil.rmtree(path, ignore_errors=True)


def _writer_state(suffix: str) -> str:
    """``"gone"``, ``"running"`` or ``"elsewhere"``: the state of the process a hidden
    folder's name holds (``<host>-<pid>-<hex>``). A name in another shape counts as
    running, so that nothing of unknown origin is deleted."""
    host, _, pid = suffix.rpartition("-")[0].rpartition("-")
    if not pid.isdigit():
        return "running"
    if host != socket.gethostname():
        return "elsewhere"
    if int(pid) == os.getpid():
        return "running"  # this process's own save is under way (another thread)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "running"  # a live process of another user
    return "running"


def _warn_if_stale(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if time.time() - os.path.getmtime(path) > _STALE_AFTER_S:
            logger.warning(
                "%s was left by a save_model on another host over a day ago; this process "
                "cannot tell whether it still runs. Delete the folder if no save runs there.",
                path,
            )
