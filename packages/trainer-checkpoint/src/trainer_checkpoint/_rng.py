"""Capturing and restoring every random generator a training process draws from.

One state per process: python's ``random``, numpy's global generator, torch's CPU
generator, the generator of every CUDA device under ``"cuda"``, and, where the run uses
them, the XLA device's (``"xla"``, when torch_xla is imported: it is never imported here
for that) and Apple MPS's (``"mps"``), under the reference's key names.

The CUDA entry follows the reference's layout so that checkpoints move between the two:
a list with one state per visible device (``torch.cuda.random.get_rng_state_all()``)
when several processes train or several devices are visible, and the single state of
the current device (``get_rng_state()``) for one process on one device. Both are
accepted when reading. CUDA states are captured only once CUDA is initialised: before
that no CUDA generator has drawn anything (a seed given to ``torch.manual_seed`` is
queued until then), and asking for the states would start a CUDA context on a run that
never uses the GPU.
"""

from __future__ import annotations

import logging
import random
import sys
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


def capture_rng_state(*, num_processes: int = 1) -> dict[str, Any]:
    """The current python, numpy, torch CPU and CUDA generator states.

    Args:
        num_processes: Processes training together; with several, the CUDA states are
            always a list (what the reference reads back in distributed runs).
    """
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }
    cuda = _cuda_state(torch.cuda, num_processes=num_processes)
    if cuda is not None:
        state["cuda"] = cuda
    xla = _xla_module()
    if xla is not None:
        state["xla"] = xla.get_rng_state()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set every generator named in ``state``; absent keys are left as they are."""
    if "python" in state:
        random.setstate(_as_python_state(state["python"]))
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "cpu" in state:
        torch.random.set_rng_state(state["cpu"])
    if "cuda" in state:
        _restore_cuda(state["cuda"], torch.cuda)
    if "xla" in state:
        _restore_optional("xla", _xla_module(), state["xla"])
    if "mps" in state:
        mps = torch.mps if torch.backends.mps.is_available() else None
        _restore_optional("mps", mps, state["mps"])


def _xla_module() -> Any:
    """torch_xla's ``xla_model`` when this process imported torch_xla (an XLA run), else
    None: importing it here would start an XLA runtime in runs that never use one."""
    if "torch_xla" not in sys.modules:
        return None
    import torch_xla.core.xla_model as xm

    return xm


def _restore_optional(name: str, backend: Any, value: Any) -> None:
    if backend is None:
        logger.info("The checkpoint holds a %s RNG state this run cannot use; skipped.", name)
        return
    backend.set_rng_state(value)


def _as_python_state(value: Any) -> tuple[Any, ...]:
    # random.setstate needs tuples; a round trip through some formats yields lists.
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def _cuda_state(cuda: Any, *, num_processes: int) -> Any:
    """The CUDA generator states (see the module docstring), or None without CUDA in use.

    ``cuda`` is the ``torch.cuda`` module (a parameter so that the choice can be tested
    on machines without a GPU).
    """
    if not (cuda.is_available() and cuda.is_initialized()):
        return None
    if num_processes > 1 or cuda.device_count() > 1:
        return cuda.random.get_rng_state_all()
    return cuda.random.get_rng_state()


def _restore_cuda(value: Any, cuda: Any) -> None:
    """Put the CUDA generators back; a single tensor is the current device's state."""
    if not cuda.is_available():
        logger.info("The checkpoint holds CUDA RNG states but CUDA is unavailable; skipped.")
        return
    if isinstance(value, torch.Tensor):
        cuda.random.set_rng_state(value)
        return
    states = list(value)
    visible = cuda.device_count()
    if len(states) != visible:
        logger.warning(
            "The checkpoint holds RNG states for %d CUDA devices but %d are visible; "
            "restoring the first %d only, so a resumed run may not repeat exactly.",
            len(states),
            visible,
            min(len(states), visible),
        )
    for index, device_state in enumerate(states[:visible]):
        cuda.random.set_rng_state(device_state, device=index)
