"""``checkpoint-<step>`` folders: naming, discovery, completeness and rotation.

A folder counts as a checkpoint when its name is ``checkpoint-<int>``, it holds
``trainer_state.json`` and the model's state: full weights (every shard an index names),
a PEFT model's adapter (``adapter_config.json`` and ``adapter_model.safetensors``), or
per-process shards (the ``sharded_state.json`` marker we write next to them, or the
layouts the reference writes: a ``torch.distributed.checkpoint`` folder, which holds a
``.metadata`` file once complete, or DeepSpeed's ``latest`` tag file); and, when it was
written for resuming, ``optimizer.pt`` (see :func:`missing_parts`). Our own saves become
visible only by a rename once complete, and our deletions start with a rename to a
hidden name, so no crash leaves part of a checkpoint under a ``checkpoint-<step>`` name.
Folders written or deleted in place by other tools (the reference Trainer does both) may
be half done after a crash; the files checked here are the ones a resume reads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Collection
from typing import Any

from trainer_checkpoint._adapters import has_adapter
from trainer_checkpoint._weights import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
)

__all__ = [
    "CHECKPOINT_PREFIX",
    "DELETING_PREFIX",
    "OPTIMIZER_NAME",
    "SCALER_NAME",
    "SCHEDULER_NAME",
    "SHARDED_STATE_NAME",
    "STAGING_PREFIX",
    "TRAINER_STATE_NAME",
    "TRAINING_ARGS_NAME",
    "checkpoint_name",
    "delete_folder",
    "has_sharded_state",
    "incomplete_folders",
    "is_complete",
    "list_checkpoints",
    "missing_parts",
    "move_aside",
    "remove_leftovers",
    "rotate_checkpoints",
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint"
STAGING_PREFIX = ".tmp-"
# A folder being deleted: renamed first, so that a crash during the deletion leaves a
# hidden name that no listing takes for a checkpoint (removed by the next rotation).
DELETING_PREFIX = STAGING_PREFIX + "deleting-"
TRAINER_STATE_NAME = "trainer_state.json"
SHARDED_STATE_NAME = "sharded_state.json"
OPTIMIZER_NAME = "optimizer.pt"
SCHEDULER_NAME = "scheduler.pt"
SCALER_NAME = "scaler.pt"
TRAINING_ARGS_NAME = "training_args.json"
_DCP_METADATA = ".metadata"  # written last by torch.distributed.checkpoint's coordinator
_DEEPSPEED_TAG = "latest"  # written last by DeepSpeed's engine.save_checkpoint
_NAME_RE = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")
_RNG_RE = re.compile(r"^rng_state(_\d+)?\.pth$")
# Our staging folders, the old copy a re-saved step swapped out (".tmp-old-", written
# by earlier versions) and folders being deleted, with the step they belong to.
_HIDDEN_RE = re.compile(
    rf"^{re.escape(STAGING_PREFIX)}(?:old-|deleting-)?{CHECKPOINT_PREFIX}-(\d+)(?:-[0-9a-f]+)?$"
)


def checkpoint_name(step: int) -> str:
    """``checkpoint-<step>``."""
    return f"{CHECKPOINT_PREFIX}-{step}"


def is_complete(folder: str) -> bool:
    """Whether ``folder`` holds everything a run resumes from (see :func:`missing_parts`)."""
    return not missing_parts(folder)


def missing_parts(folder: str) -> list[str]:
    """What ``folder`` lacks to be a complete checkpoint; empty when it is one.

    It needs ``trainer_state.json`` and the model's state: a weights file, every shard
    its index names, or per-process shards. A full-weights checkpoint written for
    resuming (it holds ``scheduler.pt``, ``scaler.pt`` or an RNG file) also needs
    ``optimizer.pt``, and ``scheduler.pt`` when our Trainer wrote it
    (``training_args.json``): a folder that lacks them was cut short by a crash while
    another tool wrote or deleted it in place, and resuming from it would restart the
    optimizer silently. Folders without any resume file stay complete:
    ``save_only_model`` checkpoints, and what ``save_model()`` with ``save_state()``
    writes (which the reference resumes from, with a fresh optimizer).
    """
    names = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    missing = [] if TRAINER_STATE_NAME in names else [TRAINER_STATE_NAME]
    if has_sharded_state(folder):
        return missing
    missing += _missing_weights(folder, names)
    return missing + _missing_resume_files(folder, names)


def _missing_weights(folder: str, names: set[str]) -> list[str]:
    """The weight files ``folder`` lacks: none with a single file (a PEFT adapter's
    included), else the index's shards."""
    if names & {SAFE_WEIGHTS_NAME, WEIGHTS_NAME}:
        return []
    if has_adapter(folder):
        return []
    for index in (SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME):
        if index in names:
            weight_map = (_read_json(os.path.join(folder, index)) or {}).get("weight_map") or {}
            return sorted(set(weight_map.values()) - names)
    return [f"model weights ({SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME})"]


def _missing_resume_files(folder: str, names: set[str]) -> list[str]:
    """``optimizer.pt`` / ``scheduler.pt`` when the folder was written for resuming."""
    ours = (
        _read_json(os.path.join(folder, TRAINING_ARGS_NAME))
        if TRAINING_ARGS_NAME in names
        else None
    )
    resumable = bool(names & {OPTIMIZER_NAME, SCHEDULER_NAME, SCALER_NAME}) or any(
        _RNG_RE.match(name) for name in names
    )
    if not resumable:
        return []
    needed = [OPTIMIZER_NAME, SCHEDULER_NAME] if ours is not None else [OPTIMIZER_NAME]
    return [name for name in needed if name not in names]


def _read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


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

    The newest complete checkpoint (where a resumed run starts) and the paths in ``keep``
    (the best checkpoint, the one training resumed from) are never deleted, and count
    towards the limit, as in the reference. So ``limit=1`` keeps one folder when the best
    checkpoint is the newest one, and two (the best and the newest) when the best is
    older: the limit is exceeded only by the protected folders themselves. A
    non-positive limit deletes nothing.

    ``checkpoint-<step>`` folders older than the newest complete one that are not
    complete themselves (a user kept only the weights, another tool wrote them) count
    towards the limit like the others, as in the reference, and go only in their turn:
    rotation never deletes a folder just for being incomplete. Incomplete folders newer
    than every complete one are left alone (a save may be under way there).

    Returns:
        The deleted folders, oldest first.
    """
    if limit is None or limit <= 0:
        return []
    remove_leftovers(output_dir)
    candidates = _candidates(output_dir)
    complete = [(step, path) for step, path in candidates if is_complete(path)]
    if not complete:
        return []
    newest_step, newest = complete[-1]
    pool = [path for step, path in candidates if step <= newest_step]
    protected = {os.path.realpath(path) for path in [*keep, newest] if path}
    others = [path for path in pool if os.path.realpath(path) not in protected]
    survivors = max(limit, len(pool) - len(others))
    doomed = others[: max(len(pool) - survivors, 0)]
    for path in doomed:
        # v4.34's wording, which log readers search for.
        logger.info("Deleting older checkpoint [%s] due to args.save_total_limit", path)
    return [path for path in doomed if delete_folder(path)]


def remove_leftovers(output_dir: str) -> None:
    """Delete what our own interrupted saves and deletions left behind: folders whose
    deletion was cut short (always), and staging folders of steps older than the newest
    complete checkpoint. Only hidden folders of ours are touched: a ``checkpoint-<step>``
    folder is never deleted here, whatever it holds.
    """
    candidates = _candidates(output_dir)
    newest = max((step for step, path in candidates if is_complete(path)), default=None)
    for name in sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []:
        match = _HIDDEN_RE.match(name)
        older = match is not None and newest is not None and int(match.group(1)) < newest
        if name.startswith(DELETING_PREFIX) or older:
            logger.info("Removing %s, left by an interrupted save or deletion.", name)
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def move_aside(path: str) -> str | None:
    """Rename ``path`` to a hidden name beside it that no listing takes for a checkpoint.

    The rename is atomic, so a crash leaves either the whole folder under its name or
    none of it. Returns the new path, or None when ``path`` is gone already (another
    writer process deleted it).
    """
    parent, name = os.path.split(os.path.normpath(path))
    aside = os.path.join(parent, f"{DELETING_PREFIX}{name}-{uuid.uuid4().hex[:8]}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return None
    return aside


def delete_folder(path: str) -> bool:
    """Delete the folder ``path``: first :func:`move_aside`, then the files.

    Deleting in place could be killed half way and leave, say, only ``optimizer.pt`` or
    everything but it under the checkpoint's name, which later runs would skip or, worse,
    resume from. Returns whether this call removed it.
    """
    aside = move_aside(path)
    if aside is None:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True
