"""Putting a finished checkpoint folder under its final name, even when that name is taken.

A step saved a second time (a run resumed and saving the step it resumed from again,
``save_strategy="best"``, a rolled-back run reaching a step it saved before) already has
a ``checkpoint-<step>`` folder. Replacing it with two renames (old aside, new in place)
leaves a moment when no folder has the name: a crash then, or a failed second rename (a
full disk can refuse to grow the directory), would lose the step that was saved before.
On Linux the two folders are exchanged in one atomic step (``renameat2`` with
``RENAME_EXCHANGE``); elsewhere, or on a file system that cannot exchange, the old folder
moves aside and is put back if the new one cannot take its name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import sys
from typing import Any

from trainer_checkpoint._folders import move_aside

__all__ = ["exchange", "publish"]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# The system or file system cannot exchange: fall back to two renames.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}


def _load_renameat2() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.renameat2  # glibc >= 2.28
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def exchange(first: str, second: str) -> bool:
    """Swap the two existing paths atomically; return False (nothing changed) where the
    system or the file system cannot.

    Raises:
        OSError: the exchange was refused for another reason (a path is missing...).
    """
    if _renameat2 is None:
        return False
    status = _renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), first, None, second)


def publish(staging: str, final: str) -> None:
    """Give the complete folder ``staging`` the name ``final``, replacing what is there.

    At every moment ``final`` names either the previous folder or the new one, whole; when
    this raises, it still names the previous one. The previous folder is deleted last.
    """
    if not os.path.lexists(final):
        os.replace(staging, final)
        return
    if exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous folder
        return
    aside = move_aside(final)
    try:
        os.replace(staging, final)
    except BaseException:
        if aside is not None:
            os.replace(aside, final)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
