"""Capturing and restoring every random generator a training process draws from.

One state per process: python's ``random``, numpy's global generator, torch's CPU
generator and the generator of every CUDA device (``"cuda"``, a list, as the reference
writes it in distributed runs; a single tensor is accepted when reading).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "rng_file_name"]

logger = logging.getLogger(__name__)


def rng_file_name(process_index: int, num_processes: int) -> str:
    """``rng_state.pth`` for one process, ``rng_state_<rank>.pth`` for several (as the
    reference names them)."""
    return "rng_state.pth" if num_processes <= 1 else f"rng_state_{process_index}.pth"


def capture_rng_state() -> dict[str, Any]:
    """The current python, numpy, torch CPU and CUDA generator states."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.random.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set every generator named in ``state``; absent keys are left as they are."""
    if "python" in state:
        random.setstate(_as_python_state(state["python"]))
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "cpu" in state:
        torch.random.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        _restore_cuda(state["cuda"])


def _as_python_state(value: Any) -> tuple[Any, ...]:
    # random.setstate needs tuples; a round trip through some formats yields lists.
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def _restore_cuda(value: Any) -> None:
    if isinstance(value, torch.Tensor):
        torch.cuda.random.set_rng_state(value)
        return
    states = list(value)
    if len(states) != torch.cuda.device_count():
        logger.warning(
            "The checkpoint holds RNG states for %d CUDA devices but %d are visible; "
            "restoring the first ones only, so a resumed run may not repeat exactly.",
            len(states),
            torch.cuda.device_count(),
        )
    for index, device_state in enumerate(states[: torch.cuda.device_count()]):
        torch.cuda.random.set_rng_state(device_state, device=index)
