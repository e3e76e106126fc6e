"""Collectives of the XLA FSDP runtime, written against its thin torch_xla layer.

Each function takes the layer (``xla``: ``all_gather`` along dim 0 of same-shape tensors,
``all_reduce(op, tensor, scale)``, ``rendezvous(tag)``) and adds what ``xm`` leaves out:
tensors whose sizes differ between processes, mean reductions, main-process-first
blocks. Every function here is a collective: all processes call it, in the same order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from trainer_dist._collectives import pad_to_largest_size


def chunks(tensors: list[torch.Tensor], budget: int) -> Iterator[list[torch.Tensor]]:
    """Consecutive groups of ``tensors`` of about ``budget`` bytes (at least one each)."""
    chunk: list[torch.Tensor] = []
    size = 0
    for tensor in tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if chunk and size + nbytes > budget:
            yield chunk
            chunk, size = [], 0
        chunk.append(tensor)
        size += nbytes
    if chunk:
        yield chunk


def _sizes(tensor: torch.Tensor, dim: int, xla: Any) -> list[int]:
    size = torch.tensor([tensor.shape[dim]], dtype=torch.int64, device=tensor.device)
    return [int(value) for value in xla.all_gather(size).cpu().tolist()]


def gather_uneven(tensor: torch.Tensor, xla: Any) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0; first dimensions may differ.

    A 0-d tensor counts as one row; bools travel as uint8.
    """
    if tensor.dim() == 0:
        tensor = tensor.reshape(1)
    as_bool = tensor.dtype == torch.bool
    if as_bool:
        tensor = tensor.to(torch.uint8)
    sizes = _sizes(tensor, 0, xla)
    largest = max(sizes)
    if tensor.shape[0] < largest:
        filler = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, filler])
    parts = torch.split(xla.all_gather(tensor.contiguous()), largest)
    joined = torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])
    return joined.bool() if as_bool else joined


def pad_to_largest(tensor: torch.Tensor, xla: Any, *, dim: int, pad_index: Any) -> torch.Tensor:
    """Pad ``tensor`` at the end of ``dim`` with ``pad_index`` to the largest size among
    processes (0-d tensors and missing dims are returned as they are)."""
    return pad_to_largest_size(tensor, dim, pad_index, lambda t, d: _sizes(t, d, xla))


def reduce_copy(tensor: torch.Tensor, op: str, xla: Any, world: int) -> torch.Tensor:
    """All-reduce a copy of ``tensor``; "mean" sums with a ``1 / world`` scale (as float)."""
    result = tensor.detach().clone()
    if op == "mean":
        if not result.is_floating_point():
            result = result.float()
        return xla.all_reduce("sum", result, scale=1.0 / world)
    return xla.all_reduce(op, result)


@contextlib.contextmanager
def main_first(is_main: bool, xla: Any) -> Iterator[None]:
    tag = "trainer_dist.main_process_first"
    if not is_main:
        xla.rendezvous(tag)
    try:
        yield
    finally:
        if is_main:
            xla.rendezvous(tag)
