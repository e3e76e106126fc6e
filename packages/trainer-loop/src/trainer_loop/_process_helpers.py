"""The process-group helpers of ``transformers.trainer_pt_utils`` / ``trainer_utils``.

Custom evaluation loops gather their outputs from every process with
:func:`distributed_concat`, and data preparation in user scripts runs on the first
process of each machine first with :func:`torch_distributed_zero_first`. They act on the
default ``torch.distributed`` process group that the launcher (``torchrun``,
``accelerate launch``) and the Trainer set up; the Trainer itself goes through its
runtime (trainer-dist) instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from trainer_loop._nested import map_nested

_CUDA = torch.device("cuda")


def _gather_rows(tensor: torch.Tensor, num_total_examples: int | None) -> torch.Tensor:
    """Every process's ``tensor`` joined along dimension 0, in rank order."""
    tensor = torch.atleast_1d(tensor).contiguous()
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    joined = torch.cat(parts, dim=0)
    return joined if num_total_examples is None else joined[:num_total_examples]


def distributed_concat(tensor: Any, num_total_examples: int | None = None) -> Any:
    """Gather ``tensor`` (or a list, tuple or dict of tensors) from every process.

    Every process must pass tensors of the same shape; the results are joined along
    dimension 0 in rank order, 0-d tensors counting as one row. ``num_total_examples``
    keeps only that many rows: the samples the sampler repeated to give every process
    the same number are dropped.

    Raises:
        ValueError: No default process group was initialised (from ``torch.distributed``).
    """
    return map_nested(lambda leaf: _gather_rows(leaf, num_total_examples), tensor)


def distributed_broadcast_scalars(
    scalars: Sequence[int | float],
    num_total_examples: int | None = None,
    device: torch.device | None = _CUDA,
) -> torch.Tensor:
    """Gather a list of numbers from every process into one 1-d tensor, in rank order.

    Every process must pass as many numbers. The tensor is built on ``device`` (CUDA by
    default, as NCCL needs; pass ``torch.device("cpu")`` with gloo). ``num_total_examples``
    keeps only that many values.
    """
    return _gather_rows(torch.tensor(scalars, device=device), num_total_examples)


@contextmanager
def torch_distributed_zero_first(local_rank: int) -> Iterator[None]:
    """Run the ``with`` body on the first process of each machine before the others.

    Processes with ``local_rank`` above 0 wait at a barrier until local rank 0 has run
    the body (downloaded, tokenised, written a cache), then run it themselves and find
    its result. ``local_rank`` -1 (no launcher) runs the body at once.
    """
    if local_rank not in (-1, 0):
        dist.barrier()
    yield
    if local_rank == 0:
        dist.barrier()


def reissue_pt_warnings(caught_warnings: Sequence[warnings.WarningMessage]) -> None:
    """Warn again the warnings a ``warnings.catch_warnings(record=True)`` block recorded,
    but for the ``UserWarning`` ones.

    The Trainer records the warnings of saving or loading a scheduler, whose
    ``UserWarning`` about saving the optimizer too is noise there. As in the reference,
    nothing is reissued when a single warning was recorded.
    """
    if len(caught_warnings) <= 1:
        return
    for caught in caught_warnings:
        if caught.category is not UserWarning:
            warnings.warn(caught.message, caught.category, stacklevel=2)


def _xla_runtime() -> Any:
    """``torch_xla.runtime`` when torch_xla is installed, else None."""
    try:
        import torch_xla.runtime
    except ImportError:
        return None
    return torch_xla.runtime


def is_main_process(local_rank: int) -> bool:
    """Whether this is the main process: ordinal 0 on TPU, else ``local_rank`` -1 or 0.

    Scripts use it to configure logging (verbose on the main process only).
    """
    xla = _xla_runtime()
    if xla is not None:
        return bool(xla.global_ordinal() == 0)
    return local_rank in (-1, 0)


def total_processes_number(local_rank: int) -> int:
    """How many processes run in parallel: the TPU world size, the process group's size
    when ``local_rank`` is not -1, else 1.

    Raises:
        ValueError: ``local_rank`` is set but no process group was initialised.
    """
    xla = _xla_runtime()
    if xla is not None:
        return int(xla.world_size())
    if local_rank != -1:
        return dist.get_world_size()
    return 1
