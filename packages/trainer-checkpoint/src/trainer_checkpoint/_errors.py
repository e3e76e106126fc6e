"""The errors a checkpoint store raises; each subclasses the built-in a caller expects."""

from __future__ import annotations

__all__ = [
    "CheckpointNotFoundError",
    "CheckpointSaveError",
    "CorruptCheckpointError",
    "NotACheckpointError",
    "UnsafeCheckpointError",
]


class CheckpointNotFoundError(FileNotFoundError, ValueError):
    """A checkpoint path that does not exist, or no checkpoint where one was required.

    Also a ``ValueError``: the reference raises that for a ``resume_from_checkpoint``
    that names no folder, and scripts catch it so.
    """


class NotACheckpointError(ValueError):
    """A folder that exists but is not a complete checkpoint."""


class CorruptCheckpointError(NotACheckpointError):
    """A file of a checkpoint cannot be read back: truncated (a full disk, an interrupted
    copy) or garbled. Raised before anything of the checkpoint is loaded."""


class CheckpointSaveError(OSError):
    """Writing a checkpoint failed; the earlier checkpoints are untouched."""


class UnsafeCheckpointError(ValueError):
    """A file holds pickled objects other than tensors and plain containers.

    Loading it would run code chosen by whoever wrote the file, so it is refused.
    """
