"""Which device this process trains on, decided with torch imported only on demand.

``import trainer_args`` never loads torch; the first read of ``TrainingArguments.device``
or ``n_gpu`` does. Nothing here starts a process group or touches a GPU beyond asking
torch what is available: setting up distributed state is the runtime's job (trainer-dist).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any


def torch_if_installed() -> ModuleType | None:
    """Return the ``torch`` module, or ``None`` when it cannot be imported."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def require_torch(feature: str) -> ModuleType:
    """Return ``torch`` or raise an ``ImportError`` that says ``feature`` needs it."""
    torch = torch_if_installed()
    if torch is None:
        raise ImportError(
            f"{feature} needs PyTorch, which is not installed. Install it with "
            f"`pip install torch`, or install `trainer`, which depends on it. "
            f"(Building and serialising TrainingArguments works without torch.)",
            name="torch",
        )
    return torch


@dataclass(frozen=True)
class DevicePlan:
    """The device decision in plain values, so it can be computed and tested without GPUs.

    Attributes:
        kind: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        index: the device index for ``cuda``; ``None`` otherwise.
        n_gpu: how many accelerators this process drives (0 on CPU, 1 per process when
            distributed, every visible GPU when one process drives several).
    """

    kind: str
    index: int | None
    n_gpu: int

    def as_string(self) -> str:
        """``"cuda:1"``, ``"mps"``, ``"cpu"``: what ``torch.device`` accepts."""
        return self.kind if self.index is None else f"{self.kind}:{self.index}"


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def plan_device(torch: Any, *, use_cpu: bool, distributed: bool, local_rank: int) -> DevicePlan:
    """Choose the device: CPU if asked, else CUDA, else MPS, else CPU.

    Args:
        torch: the torch module (passed in so that callers control the import).
        use_cpu: the user asked for CPU even if an accelerator is present.
        distributed: this process is one of several launched processes; it then owns the
            single GPU whose index is its local rank.
        local_rank: this process's index on its machine (``-1`` or ``0`` when alone).
    """
    if use_cpu:
        return DevicePlan("cpu", None, 0)
    if torch.cuda.is_available():
        if distributed:
            return DevicePlan("cuda", max(local_rank, 0), 1)
        return DevicePlan("cuda", 0, torch.cuda.device_count())
    if _mps_available(torch):
        return DevicePlan("mps", None, 1)
    return DevicePlan("cpu", None, 0)
