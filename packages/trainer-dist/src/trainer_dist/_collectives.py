"""Collectives over a running ``torch.distributed`` process group: gather, pad, reduce,
and broadcast of a picklable host object.

Every function here is a collective: each process of the group must call it, in the same
order, with tensors of the same dtype and number of dimensions. Nested structures
(mappings, lists, tuples of tensors) are walked in a deterministic order so that every
process issues the same sequence of collectives.

Unlike a bare ``all_gather``, :func:`gather_tensor` accepts tensors whose first dimension
differs between processes (the last evaluation batch of a process may be smaller), at the
cost of one extra small collective that exchanges the sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F  # torch's own spelling

_REDUCE_OPS: dict[str, Any] = {
    "sum": dist.ReduceOp.SUM,
    "mean": dist.ReduceOp.SUM,  # divided by the world size afterwards
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
}


def apply_nested(data: Any, function: Callable[[torch.Tensor], Any]) -> Any:
    """Apply ``function`` to every tensor inside ``data``, rebuilding its containers.

    Mappings become dicts unless their type can be rebuilt from one; named tuples keep
    their type. Non-tensor leaves are returned unchanged.
    """
    if isinstance(data, torch.Tensor):
        return function(data)
    if isinstance(data, Mapping):
        moved = {key: apply_nested(value, function) for key, value in data.items()}
        try:
            return moved if type(data) is dict else type(data)(moved)  # type: ignore[call-arg]  # most mappings take a dict
        except TypeError:
            return moved
    if isinstance(data, (list, tuple)):
        items = [apply_nested(item, function) for item in data]
        if isinstance(data, tuple) and hasattr(data, "_fields"):  # a named tuple
            return type(data)(*items)
        return type(data)(items)
    return data


def _all_gather_equal(tensor: torch.Tensor, world_size: int) -> list[torch.Tensor]:
    """``all_gather`` of same-shape tensors; bools travel as uint8 (not every backend has them)."""
    as_bool = tensor.dtype == torch.bool
    payload = (tensor.to(torch.uint8) if as_bool else tensor).contiguous()
    parts = [torch.empty_like(payload) for _ in range(world_size)]
    dist.all_gather(parts, payload)
    return [part.bool() for part in parts] if as_bool else parts


def _sizes_along(tensor: torch.Tensor, dim: int, world_size: int) -> list[int]:
    size = torch.tensor([tensor.shape[dim]], device=tensor.device, dtype=torch.long)
    return [int(part.item()) for part in _all_gather_equal(size, world_size)]


def gather_tensor(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0, in rank order.

    A 0-d tensor counts as one row. First dimensions may differ between processes; the
    other dimensions must match (pad them with :func:`pad_tensor` first).
    """
    if tensor.dim() == 0:
        tensor = tensor.reshape(1)
    sizes = _sizes_along(tensor, 0, world_size)
    largest = max(sizes)
    padded = tensor
    if tensor.shape[0] < largest:
        filler = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
        padded = torch.cat([tensor, filler], dim=0)
    parts = _all_gather_equal(padded, world_size)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)], dim=0)


def pad_tensor(tensor: torch.Tensor, *, dim: int, pad_index: Any, world_size: int) -> torch.Tensor:
    """Pad ``tensor`` at the end of ``dim`` with ``pad_index`` to the largest size in the group.

    A 0-d tensor, or a ``dim`` the tensor does not have, is returned unchanged (still a
    collective-free call on every process, since the condition is the same everywhere
    for tensors of the same rank).
    """
    return pad_to_largest_size(tensor, dim, pad_index, lambda t, d: _sizes_along(t, d, world_size))


def pad_to_largest_size(
    tensor: torch.Tensor,
    dim: int,
    pad_index: Any,
    sizes_along: Callable[[torch.Tensor, int], list[int]],
) -> torch.Tensor:
    """Pad ``tensor`` at the end of ``dim`` to the largest of the sizes ``sizes_along``
    (a collective: every process's size of that dimension) reports.

    Shared by the torch.distributed and XLA runtimes, which learn the sizes differently.
    """
    if tensor.dim() == 0 or dim >= tensor.dim() or dim < -tensor.dim():
        return tensor
    dim = dim % tensor.dim()
    missing = max(sizes_along(tensor, dim)) - tensor.shape[dim]
    if missing == 0:
        return tensor
    # F.pad takes (left, right) pairs starting from the last dimension.
    widths = [0, 0] * (tensor.dim() - dim - 1) + [0, missing]
    if tensor.dtype == torch.bool:
        return F.pad(tensor.to(torch.uint8), widths, value=int(pad_index)).bool()
    return F.pad(tensor, widths, value=pad_index)


def reduce_tensor(tensor: torch.Tensor, op: str, world_size: int) -> torch.Tensor:
    """All-reduce a copy of ``tensor`` with ``op``; the input is left untouched.

    Raises:
        ValueError: ``op`` is not one of "mean", "sum", "max", "min".
    """
    if op not in _REDUCE_OPS:
        raise ValueError(f"reduce op={op!r} is not supported; use one of {sorted(_REDUCE_OPS)}.")
    result = tensor.detach().clone()
    if op == "mean" and not result.is_floating_point():
        result = result.float()
    dist.all_reduce(result, op=_REDUCE_OPS[op])
    if op == "mean":
        result /= world_size
    return result


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as rank ``src`` passed it, returned on every rank (the others' is ignored).

    The object is pickled, so it suits small host values (a dict of hyperparameters, a
    flag); on nccl the bytes travel through the current CUDA device, which the runtime
    has set to this process's GPU.
    """
    holder = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]
