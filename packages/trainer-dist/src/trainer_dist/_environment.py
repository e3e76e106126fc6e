"""Facts about the process and the machine: launcher, ranks, device, GPU capabilities.

Launcher environments and device choice are read through accelerate's ``PartialState``
(it knows torchrun, ``accelerate launch``, MPI and every accelerator backend); the world
size is read from the environment first, without accelerate, because constructing a
``PartialState`` under a multi-process launcher starts a process group, which the
single-process runtime must refuse before doing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

# The variables launchers use to announce how many processes they started, in the order
# accelerate reads them: torchrun / accelerate / deepspeed, then the MPI flavours.
_WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_world_size() -> int:
    """How many processes the launcher that started this one announced; without a
    launcher, the size of a process group the script started itself
    (``torch.multiprocessing.spawn`` + ``init_process_group(rank=..., world_size=...)``),
    which is kept and used; else 1.

    Raises:
        ValueError: a launcher variable is set to something that is not an integer.
    """
    for name in _WORLD_SIZE_VARIABLES:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            return int(raw)
        except ValueError:
            raise ValueError(
                f"Environment variable {name}={raw!r} is not an integer. Launchers set it "
                f"to the number of processes; unset it or fix the launch command."
            ) from None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


@dataclass(frozen=True)
class ProcessPlacement:
    """Where this process runs: its ranks, its device and how many GPUs it drives.

    Attributes:
        num_processes: processes training together (1 here).
        process_index: global rank.
        local_process_index: rank on this node.
        device: the device, always with an index for accelerators (``cuda:0``, ``mps:0``)
            so that it compares equal to ``tensor.device``.
        n_gpu: 0 on CPU; every visible CUDA device when one process drives them all
            through ``DataParallel``; 1 otherwise.
    """

    num_processes: int
    process_index: int
    local_process_index: int
    device: torch.device
    n_gpu: int


def detect_placement(device: str | torch.device | None) -> ProcessPlacement:
    """Read ranks from the launcher environment and choose the device.

    Args:
        device: a device to use as given (``"cpu"``, ``"cuda:1"``); ``None`` lets
            accelerate choose the best available one (CUDA, MPS, ... else CPU).

    Raises:
        ValueError: ``device`` names an accelerator this machine does not have.
    """
    from accelerate import PartialState
    from accelerate.utils import DistributedType

    requested = None if device is None else torch.device(device)
    if requested is not None:
        _check_available(requested)
    state = PartialState(cpu=requested is not None and requested.type == "cpu")
    launched = state.distributed_type != DistributedType.NO
    if requested is not None:
        chosen = requested
    elif launched or os.environ.get("ACCELERATE_TORCH_DEVICE"):
        chosen = state.device
    else:
        chosen = state.default_device
    chosen = _with_index(chosen)
    return ProcessPlacement(
        num_processes=state.num_processes,
        process_index=state.process_index,
        local_process_index=max(state.local_process_index, 0),
        device=chosen,
        n_gpu=_count_gpus(chosen, one_per_process=launched or requested is not None),
    )


def placement_in_group(placement: ProcessPlacement, *, size: int, rank: int) -> ProcessPlacement:
    """``placement`` corrected to the ranks of the process group that really formed.

    accelerate's ``PartialState`` can describe a process of a group as a lone process of
    rank 0 (seen under ``accelerate launch`` with DeepSpeed on a machine without GPUs);
    sharding data by that count would let every process train on all of it. The group's
    own size and rank win; the local rank comes from the launcher's ``LOCAL_RANK``, and a
    CUDA process moves to the GPU of that local rank, as launchers intend.

    Raises:
        ValueError: ``LOCAL_RANK`` is set to something that is not an integer.
    """
    if (placement.num_processes, placement.process_index) == (size, rank):
        return placement
    raw_local = os.environ.get("LOCAL_RANK", "").strip() or str(rank)
    try:
        local = int(raw_local)
    except ValueError:
        raise ValueError(
            f"Environment variable LOCAL_RANK={raw_local!r} is not an integer. Launchers set "
            f"it to the process's rank on its node; unset it or fix the launch command."
        ) from None
    device = placement.device
    if device.type == "cuda":
        device = torch.device("cuda", local % max(torch.cuda.device_count(), 1))
    return ProcessPlacement(
        num_processes=size,
        process_index=rank,
        local_process_index=local,
        device=device,
        n_gpu=min(placement.n_gpu, 1),
    )


def _check_available(device: torch.device) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but CUDA is not available on this machine "
            f"(torch {torch.__version__}). Use 'cpu', or install a CUDA build of torch."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but MPS is not available on this machine. "
            f"Use 'cpu' (or a CUDA device)."
        )


def _with_index(device: torch.device) -> torch.device:
    if device.type in ("cpu", "meta") or device.index is not None:
        return device
    backend = getattr(torch, device.type, None)
    current_device = getattr(backend, "current_device", None)
    index = current_device() if callable(current_device) else 0
    return torch.device(device.type, index)


def _count_gpus(device: torch.device, *, one_per_process: bool) -> int:
    if device.type == "cpu":
        return 0
    if device.type == "cuda" and not one_per_process:
        return torch.cuda.device_count()
    return 1


def supports_tf32(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU of the Ampere generation or newer (TF32 matmuls)."""
    if device.type != "cuda" or torch.version.cuda is None:
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 in CUDA matmuls and cuDNN convolutions (process-wide).

    Uses the ``fp32_precision`` switches where torch has them: torch refuses to mix them
    with the older ``allow_tf32`` flags, which remain the fallback for older releases.
    """
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        precision = "tf32" if enabled else "ieee"
        matmul.fp32_precision = precision
        torch.backends.cudnn.conv.fp32_precision = precision  # type: ignore[attr-defined]  # torch>=2.9
    else:
        matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def supports_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast can run on ``device`` (always on CPU; hardware-dependent on CUDA)."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            # Emulated bf16 on pre-Ampere GPUs runs, but far slower than fp32: refuse it.
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    return True
