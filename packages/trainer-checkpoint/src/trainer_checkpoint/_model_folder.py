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
no longer runs on this host are cleaned up.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable

from trainer_checkpoint._weights import has_weights, weight_files

__all__ = ["SAVE_STAGING_PREFIX", "save_into_folder"]

logger = logging.getLogger(__name__)

SAVE_STAGING_PREFIX = ".tmp-save-model-"
_ASIDE_PREFIX = ".tmp-previous-weights-"
_UPDATED_IN_PLACE = ("README.md",)  # files a writer reads back and updates


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
        for name in sorted(os.listdir(staging)):
            target = os.path.join(folder, name)
            if os.path.isdir(target) and not os.path.islink(target):
                # A sub-folder save_pretrained writes (a second PEFT adapter): the new
                # one replaces it whole, as the earlier one's files are not the new model's.
                os.replace(target, os.path.join(staging, f"{name}.previous-{uuid.uuid4().hex}"))
            os.replace(os.path.join(staging, name), target)
    except BaseException:
        if earlier is not None:
            _put_back(earlier, folder)
        raise
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)


def _set_aside_weights(folder: str) -> str | None:
    names = weight_files(folder)
    if not names:
        return None
    aside = _hidden_folder(folder, _ASIDE_PREFIX)
    for name in names:
        os.replace(os.path.join(folder, name), os.path.join(aside, name))
    return aside


def _put_back(aside: str, folder: str) -> None:
    for name in os.listdir(aside):
        os.replace(os.path.join(aside, name), os.path.join(folder, name))
    os.rmdir(aside)


def _hidden_folder(folder: str, prefix: str) -> str:
    path = os.path.join(
        folder, f"{prefix}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    os.mkdir(path)
    return path


def _clean_up_after_dead_writers(folder: str) -> None:
    """Remove the staging folders of saves killed midway, and put back earlier weights a
    save killed between moving them aside and moving its own in had left hidden."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        prefix = next((p for p in (SAVE_STAGING_PREFIX, _ASIDE_PREFIX) if name.startswith(p)), None)
        if prefix is None or not os.path.isdir(path) or not _writer_is_gone(name[len(prefix) :]):
            continue
        if prefix == _ASIDE_PREFIX and not has_weights(folder):
            logger.warning(
                "Restoring the model weights in %s that an interrupted save had moved aside.", path
            )
            _put_back(path, folder)
        else:
            logger.info("Removing %s, left by an interrupted save_model.", path)
            shutil.rmtree(path, ignore_errors=True)


def _writer_is_gone(suffix: str) -> bool:
    """Whether the process a hidden folder's name holds (``<host>-<pid>-<hex>``) has ended.

    A folder of another host, or in a shape this module does not write, is left alone.
    """
    host, _, pid = suffix.rpartition("-")[0].rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # this process's own save is under way (another thread)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a live process of another user
    return False
