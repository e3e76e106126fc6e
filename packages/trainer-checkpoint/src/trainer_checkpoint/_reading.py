"""Reading a checkpoint's files so that a damaged one is named, with the way out.

A truncated ``optimizer.pt`` makes torch say "failed finding central directory", a
truncated ``model.safetensors`` makes safetensors say "invalid header length", a garbled
``trainer_state.json`` gives a bare JSON error: none names the file, the checkpoint, or
what to do. :func:`read_part` turns such failures into a
:class:`~trainer_checkpoint.CorruptCheckpointError` that names all three, pointing to the
newest earlier checkpoint beside the damaged one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

from trainer_checkpoint._errors import CorruptCheckpointError, UnsafeCheckpointError

__all__ = ["earlier_checkpoint_hint", "read_part"]

T = TypeVar("T")
_STEP_RE = re.compile(r"^checkpoint-(\d+)$")


def _read_errors() -> tuple[type[BaseException], ...]:
    """What readers raise on damaged bytes (not on a bug or a refused file)."""
    from safetensors import SafetensorError

    return (OSError, RuntimeError, ValueError, EOFError, KeyError, TypeError, SafetensorError)


def read_part(path: str, reader: Callable[[], T], *, checkpoint: str | None = None) -> T:
    """``reader()``, which reads the file ``path`` of ``checkpoint`` (default: its folder).

    Raises:
        CorruptCheckpointError: the file could not be read; the message names it, the
            cause, and the checkpoint to resume from instead.
        UnsafeCheckpointError: the file holds pickled code (passed through).
    """
    try:
        return reader()
    except UnsafeCheckpointError:
        raise
    except _read_errors() as error:
        folder = checkpoint or os.path.dirname(os.path.abspath(path))
        cause = (str(error).strip().splitlines() or [""])[0][:200]
        raise CorruptCheckpointError(
            f"{path} is damaged and cannot be read ({type(error).__name__}: {cause}), so "
            f"the checkpoint {folder} cannot be loaded; nothing of it was loaded. Files are "
            "truncated by a full disk, an interrupted copy, or a crash while another tool "
            f"wrote them in place. {earlier_checkpoint_hint(folder)}"
        ) from error


def earlier_checkpoint_hint(checkpoint: str) -> str:
    """Advice naming the newest complete checkpoint saved before ``checkpoint``."""
    from trainer_checkpoint._folders import list_checkpoints  # _folders imports _weights

    parent = os.path.dirname(os.path.abspath(checkpoint))
    match = _STEP_RE.match(os.path.basename(os.path.normpath(checkpoint)))
    step = int(match.group(1)) if match else None
    earlier = [
        path
        for path in list_checkpoints(parent)
        if step is None or int(path.rsplit("-", 1)[1]) < step
    ]
    if not earlier:
        return f"No earlier complete checkpoint is in {parent}: restore the file or start anew."
    return (
        f"Resume from the previous checkpoint, resume_from_checkpoint={earlier[-1]!r} (or "
        f"move {checkpoint} out of {parent} so that resume_from_checkpoint=True picks "
        "that one)."
    )
