"""Operations on nested outputs (tensors inside tuples, lists and dicts).

Model outputs and labels come as tensors, tuples of tensors or dicts of them; the
evaluation loop collects them per batch and joins them once at the end, padding
sequence dimensions that differ between batches with the reference's -100.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

PADDING_INDEX = -100


def detach_to_cpu(data: Any) -> Any:
    """Detach every tensor in ``data`` and move it to the CPU."""
    if isinstance(data, torch.Tensor):
        return data.detach().cpu()
    if isinstance(data, Mapping):
        return type(data)({k: detach_to_cpu(v) for k, v in data.items()})
    if isinstance(data, (list, tuple)):
        return type(data)(detach_to_cpu(v) for v in data)
    return data


def _pad_and_concatenate(parts: list[torch.Tensor], padding_index: int) -> torch.Tensor:
    if parts[0].dim() < 2 or all(p.shape[1:] == parts[0].shape[1:] for p in parts):
        return torch.cat(parts, dim=0)
    trailing = [max(sizes) for sizes in zip(*(p.shape[1:] for p in parts), strict=True)]
    rows = sum(p.shape[0] for p in parts)
    result = parts[0].new_full((rows, *trailing), padding_index)
    offset = 0
    for part in parts:
        index = (slice(offset, offset + part.shape[0]), *(slice(0, s) for s in part.shape[1:]))
        result[index] = part
        offset += part.shape[0]
    return result


def concatenate(batches: list[Any], padding_index: int = PADDING_INDEX) -> Any:
    """Join per-batch outputs along the first dimension, keeping the nesting.

    Each batch has the same structure; tensors whose later dimensions differ are padded
    with ``padding_index``. The result is built in one allocation per leaf, so the cost is
    linear in the output size (no re-concatenating a growing array every step).
    """
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return _pad_and_concatenate(
            [b if b.dim() else b.reshape(1) for b in batches], padding_index
        )
    if isinstance(first, Mapping):
        return type(first)({k: concatenate([b[k] for b in batches], padding_index) for k in first})
    if isinstance(first, (list, tuple)):
        columns = zip(*batches, strict=True)
        return type(first)(concatenate(list(parts), padding_index) for parts in columns)
    return batches


def to_numpy(data: Any) -> Any:
    """Convert nested tensors to numpy arrays (bfloat16 goes through float32)."""
    if isinstance(data, torch.Tensor):
        if data.dtype == torch.bfloat16:
            data = data.float()
        return data.numpy()
    if isinstance(data, Mapping):
        return type(data)({k: to_numpy(v) for k, v in data.items()})
    if isinstance(data, (list, tuple)):
        return type(data)(to_numpy(v) for v in data)
    return data


def truncate(data: Any, limit: int) -> Any:
    """Keep the first ``limit`` rows of every array (drops samples repeated to fill batches)."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return data[:limit]
    if isinstance(data, Mapping):
        return type(data)({k: truncate(v, limit) for k, v in data.items()})
    if isinstance(data, (list, tuple)):
        return type(data)(truncate(v, limit) for v in data)
    return data


def first_dim(data: Any) -> int:
    """Rows in the first tensor found in ``data``."""
    if isinstance(data, torch.Tensor):
        return data.shape[0] if data.dim() else 1
    if isinstance(data, Mapping):
        return first_dim(next(iter(data.values())))
    if isinstance(data, (list, tuple)):
        return first_dim(data[0])
    raise TypeError(f"Cannot find a tensor in {type(data).__name__}")
