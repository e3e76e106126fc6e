"""``checkpoint-<step>`` folders: naming, discovery, completeness and rotation.

A folder counts as a checkpoint when its name is ``checkpoint-<int>``, it holds
``trainer_state.json`` and the model's state: full weights, or per-process shards (the
``sharded_state.json`` marker we write next to them, or the layouts the reference
writes: a ``torch.distributed.checkpoint`` folder, which holds a ``.metadata`` file once
complete, or DeepSpeed's ``latest`` tag file). Our own saves become visible only by a
rename once complete; folders written in place by other tools (the reference Trainer
writes directly into ``checkpoint-<step>``) may be half written after a crash, and the
files checked here are the ones the reference writes last.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Collection

from trainer_checkpoint._weights import has_weights

__all__ = [
    "CHECKPOINT_PREFIX",
    "SHARDED_STATE_NAME",
    "STAGING_PREFIX",
    "TRAINER_STATE_NAME",
    "checkpoint_name",
    "fsync_path",
    "has_sharded_state",
    "incomplete_folders",
    "is_complete",
    "list_checkpoints",
    "rotate_checkpoints",
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"
STAGING_PREFIX = ".tmp-"
TRAINER_STATE_NAME = "trainer_state.json"
SHARDED_STATE_NAME = "sharded_state.json"
_DCP_METADATA = ".metadata"  # written last by torch.distributed.checkpoint's coordinator
_DEEPSPEED_TAG = "latest"  # written last by DeepSpeed's engine.save_checkpoint
_NAME_RE = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


def checkpoint_name(step: int) -> str:
    """``checkpoint-<step>``."""
    return f"{CHECKPOINT_PREFIX}-{step}"


def is_complete(folder: str) -> bool:
    """Whether ``folder`` holds a trainer state and the model's state (full or sharded)."""
    if not os.path.isfile(os.path.join(folder, TRAINER_STATE_NAME)):
        return False
    return has_weights(folder) or has_sharded_state(folder)


def has_sharded_state(folder: str) -> bool:
    """Whether ``folder`` keeps model state in per-process shards.

    True with our marker (``sharded_state.json``), a ``torch.distributed.checkpoint``
    sub-folder holding its ``.metadata`` (the reference's FSDP ``SHARDED_STATE_DICT``
    checkpoints) or DeepSpeed's ``latest`` tag file.
    """
    if os.path.isfile(os.path.join(folder, SHARDED_STATE_NAME)):
        return True
    if os.path.isfile(os.path.join(folder, _DEEPSPEED_TAG)):
        return True
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return False
    return any(
        entry.is_dir() and os.path.isfile(os.path.join(entry.path, _DCP_METADATA))
        for entry in entries
    )


def _candidates(output_dir: str) -> list[tuple[int, str]]:
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _NAME_RE.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isdir(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoint folders in ``output_dir``, oldest step first."""
    return [path for _, path in _candidates(output_dir) if is_complete(path)]


def get_last_checkpoint(folder: str) -> str | None:
    """The newest complete ``checkpoint-<step>`` folder in ``folder``, or ``None``.

    The helper the reference's example scripts call to resume a run started before
    (``transformers.trainer_utils.get_last_checkpoint``). Unlike it, a folder left
    half-written by a crash is skipped rather than returned, and a ``folder`` that does
    not exist yet holds no checkpoint instead of raising.
    """
    found = list_checkpoints(folder)
    return found[-1] if found else None


def incomplete_folders(output_dir: str) -> list[str]:
    """Checkpoint-named folders that are not complete, and staging folders left by a
    crash, so that callers can report them."""
    found = [path for _, path in _candidates(output_dir) if not is_complete(path)]
    if os.path.isdir(output_dir):
        found += [
            os.path.join(output_dir, name)
            for name in sorted(os.listdir(output_dir))
            if name.startswith(STAGING_PREFIX + CHECKPOINT_PREFIX)
        ]
    return found


def rotate_checkpoints(output_dir: str, limit: int, *, keep: Collection[str] = ()) -> list[str]:
    """Delete the oldest checkpoints so that at most ``limit`` remain, if it can.

    The newest checkpoint (where a resumed run starts) and the paths in ``keep`` (the
    best checkpoint, the one training resumed from) are never deleted, and count towards
    the limit, as in the reference. So ``limit=1`` keeps one folder when the best
    checkpoint is the newest one, and two (the best and the newest) when the best is
    older: the limit is exceeded only by the protected folders themselves. A
    non-positive limit deletes nothing.

    Returns:
        The deleted folders, oldest first.
    """
    if limit is None or limit <= 0:
        return []
    checkpoints = list_checkpoints(output_dir)
    protected = {os.path.realpath(path) for path in [*keep, *checkpoints[-1:]] if path}
    others = [c for c in checkpoints if os.path.realpath(c) not in protected]
    survivors = max(limit, len(checkpoints) - len(others))
    doomed = others[: max(len(checkpoints) - survivors, 0)]
    for path in doomed:
        logger.info("Deleting older checkpoint %s (save_total_limit=%d).", path, limit)
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def fsync_path(path: str) -> None:
    """Flush one file (or a folder's entries) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
