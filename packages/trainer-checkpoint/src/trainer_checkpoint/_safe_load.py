"""Reading ``.pt`` / ``.pth`` / ``.bin`` files without executing code stored in them.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers. The one
non-tensor object checkpoints legitimately hold is numpy's global RNG state (an
``ndarray`` inside a tuple), so the few numpy functions needed to rebuild that array are
allowed, and nothing else.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
import torch

from trainer_checkpoint._errors import UnsafeCheckpointError

__all__ = ["safe_load"]


def _numpy_globals() -> list[Any]:
    """The numpy callables pickle needs to rebuild ``np.random.get_state()``'s array."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    allowed: list[Any] = [_reconstruct, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed.append(dtypes.UInt32DType)
    return allowed


def safe_load(path: str | os.PathLike[str], map_location: Any = None) -> Any:
    """Load ``path`` with ``torch.load(weights_only=True)`` and the numpy allow-list.

    Raises:
        UnsafeCheckpointError: the file holds other pickled objects (possibly code); the
            message names the file and says why it was refused.
    """
    with torch.serialization.safe_globals(_numpy_globals()):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            first_line = str(error).strip().splitlines()[-1][:300]
            raise UnsafeCheckpointError(
                f"Refusing to load {os.fspath(path)}: it holds pickled objects other than "
                "tensors, plain containers and numpy RNG state, and unpickling them could "
                "run arbitrary code. If you wrote this file yourself, re-save it with plain "
                f"state dicts. (torch said: {first_line})"
            ) from error
