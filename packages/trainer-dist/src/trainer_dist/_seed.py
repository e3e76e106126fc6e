"""Seeding every random number generator a training run draws from.

A run is reproducible only if python's ``random``, numpy's global generator and torch's
generators (the CPU one and one per accelerator) all start from the same seed; missing
one of them (numpy in a data augmentation, say) is the usual reason two "seeded" runs
differ. Full determinism additionally asks torch to pick deterministic kernels, which
costs speed and is therefore opt-in.
"""

from __future__ import annotations

import os
import random

import torch

_MAX_SEED = 2**32 - 1  # numpy's global generator accepts no more


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise ValueError(
            f"seed={seed!r} is not usable: it must be an integer between 0 and {_MAX_SEED} "
            f"(numpy's generator accepts no other). Pass e.g. seed=42."
        )


def _seed_generators(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy
    except ImportError:  # numpy is optional: nothing to seed without it
        pass
    else:
        numpy.random.seed(seed)
    # torch.manual_seed also seeds every CUDA, MPS and XPU device (lazily, so it is safe
    # before CUDA is initialised and on machines without a GPU).
    torch.manual_seed(seed)


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed python ``random``, numpy and torch (CPU and every accelerator) with ``seed``.

    Args:
        seed: an integer in ``[0, 2**32 - 1]``.
        deterministic: also make torch use deterministic kernels; the same as
            :func:`enable_full_determinism` (slower, see there).

    Raises:
        ValueError: ``seed`` is not an integer in the accepted range.
    """
    _check_seed(seed)
    if deterministic:
        enable_full_determinism(seed)
    else:
        _seed_generators(seed)


def enable_full_determinism(seed: int, warn_only: bool = False) -> None:
    """Seed everything and make torch choose deterministic algorithms only.

    What ``TrainingArguments(full_determinism=True)`` asks for. Besides seeding, it calls
    ``torch.use_deterministic_algorithms(True)``, disables cuDNN autotuning
    (``benchmark=False``) and non-deterministic cuDNN kernels, and sets the environment
    that deterministic cuBLAS (``CUBLAS_WORKSPACE_CONFIG=":16:8"`` unless already set)
    and flash-attention (``FLASH_ATTENTION_DETERMINISTIC=1``) need. It does not set
    ``CUDA_LAUNCH_BLOCKING``: that serialises kernel launches for debugging and changes
    no result. These settings are process-wide and stay in force after the call.

    Args:
        seed: an integer in ``[0, 2**32 - 1]``.
        warn_only: warn instead of raising when an operation has no deterministic
            implementation.

    Raises:
        ValueError: ``seed`` is not an integer in the accepted range.
    """
    _check_seed(seed)
    _seed_generators(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    os.environ["FLASH_ATTENTION_DETERMINISTIC"] = "1"
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
