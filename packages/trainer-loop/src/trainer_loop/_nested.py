"""Operations on nested outputs (tensors inside tuples, lists and dicts).

Model outputs and labels come as tensors, tuples of tensors or dicts of them. The
evaluation loop writes each batch into one preallocated buffer per tensor
(:class:`NestedAccumulator`), so joining N batches costs one copy of each batch, never a
re-concatenation of the growing result, and the memory held is close to the size of
the final outputs. Sequence dimensions that differ between batches are padded with the
reference's -100.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

PADDING_INDEX = -100
_PENDING_PARTS = 64  # parts held before one joint write into the buffer ...
_PENDING_BYTES = 8 * 2**20  # ... or bytes, whichever comes first


def _rebuild(template: Any, values: Any) -> Any:
    """A container of ``template``'s type holding ``values`` (a dict or a list)."""
    if isinstance(template, Mapping):
        if type(template) is dict:
            return values
        for build in (lambda: type(template)(**values), lambda: type(template)(values)):
            try:  # keyword construction first: dataclass mappings (ModelOutput) need it
                return build()
            except TypeError:
                continue
        return dict(values)
    if hasattr(template, "_fields"):  # named tuple
        return type(template)(*values)
    return type(template)(values)


def map_nested(function: Callable[..., Any], data: Any, *others: Any) -> Any:
    """Apply ``function`` to each leaf of ``data`` (and the matching leaves of ``others``).

    The containers (dicts, tuples, lists, named tuples) of ``data`` are rebuilt with the
    results, so the nesting is kept. ``others`` must have the same structure.

    Raises:
        ValueError: ``others`` do not have the structure of ``data``.
    """
    if isinstance(data, torch.Tensor):  # the common leaf, before the slower ABC checks
        return function(data, *others)
    if isinstance(data, Mapping):
        try:
            values = {k: map_nested(function, v, *(o[k] for o in others)) for k, v in data.items()}
        except (KeyError, TypeError) as error:
            raise ValueError(_structure_message(data, others)) from error
        return _rebuild(data, values)
    if isinstance(data, (list, tuple)):
        if any(not isinstance(o, (list, tuple)) or len(o) != len(data) for o in others):
            raise ValueError(_structure_message(data, others))
        items = [map_nested(function, v, *(o[i] for o in others)) for i, v in enumerate(data)]
        return _rebuild(data, items)
    return function(data, *others)


def _structure_message(data: Any, others: tuple[Any, ...]) -> str:
    return (
        f"Batches of outputs must share one structure: got {type(data).__name__} "
        f"(len {len(data)}) and {', '.join(type(o).__name__ for o in others)}. A model whose "
        "outputs change shape between batches cannot have its predictions joined; use "
        "ignore_keys to leave the changing outputs out."
    )


def detach_to_cpu(data: Any) -> Any:
    """Detach every tensor in ``data`` and move it to the CPU."""
    return map_nested(lambda t: t.detach().cpu() if isinstance(t, torch.Tensor) else t, data)


def _pad_value(dtype: torch.dtype, padding_index: int) -> int:
    """``padding_index``, or 0 for dtypes that cannot hold it (bool, unsigned)."""
    if dtype == torch.bool or (padding_index < 0 and dtype == torch.uint8):
        return 0
    return padding_index


class RowBuffer:
    """One tensor joined along dimension 0 from parts, padding later dimensions.

    Memory: when ``capacity`` (the number of rows expected) is known, the buffer is
    allocated once with that many rows; otherwise it grows by doubling. A part wider
    than the buffer in a later dimension makes it reallocate once at the new width; the
    cells no part wrote hold ``padding_index``. Rows past ``limit`` (when given) are
    dropped: they are samples a distributed sampler repeated to even out the batches.

    Speed: parts of one shape are held (up to 64 parts or 8 MiB) and written with one
    ``torch.cat`` into the buffer, so a small batch costs a list append, not a copy.
    """

    def __init__(
        self,
        capacity: int | None = None,
        padding_index: int = PADDING_INDEX,
        limit: int | None = None,
    ) -> None:
        self.capacity = capacity if limit is None or capacity is None else min(capacity, limit)
        self.padding_index = padding_index
        self.limit = limit
        self.data: torch.Tensor | None = None
        self.rows = 0  # rows written into ``data``
        self._pending: list[torch.Tensor] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def add(self, part: torch.Tensor) -> None:
        """Append ``part``'s rows (a 0-d tensor counts as one row)."""
        if part.requires_grad:  # joined values carry no autograd history
            part = part.detach()
        if part.dim() == 0:
            part = part.reshape(1)
        seen = self.rows + self._pending_rows
        if self.limit is not None and seen + part.shape[0] > self.limit:
            part = part[: max(self.limit - seen, 0)]
            if part.shape[0] == 0:
                return
        pending = self._pending
        if pending and (part.shape[1:] != pending[0].shape[1:] or part.dtype != pending[0].dtype):
            self._flush()
        pending.append(part)
        self._pending_rows += part.shape[0]
        self._pending_bytes += part.numel() * part.element_size()
        if len(pending) >= _PENDING_PARTS or self._pending_bytes >= _PENDING_BYTES:
            self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        count = self._pending_rows
        data = self._reserve(self.rows + count, pending[0])
        if data.shape[1:] == pending[0].shape[1:] and data.dtype == pending[0].dtype:
            target = data.narrow(0, self.rows, count)  # contiguous: whole rows of ``data``
            if len(pending) == 1:
                target.copy_(pending[0])
            else:
                torch.cat(pending, out=target)
        else:
            offset = self.rows
            for part in pending:
                index = (slice(offset, offset + part.shape[0]), *map(slice, part.shape[1:]))
                data[index] = part
                offset += part.shape[0]
        self.rows += count
        pending.clear()
        self._pending_rows = self._pending_bytes = 0

    def _reserve(self, rows: int, part: torch.Tensor) -> torch.Tensor:
        data = self.data
        if data is not None and rows <= data.shape[0] and data.shape[1:] == part.shape[1:]:
            return data  # fits as it is (checked first: this runs once per batch)
        if data is None:
            shape = (max(rows, self.capacity or 0), *part.shape[1:])
            self.data = part.new_full(shape, _pad_value(part.dtype, self.padding_index))
            return self.data
        if data.dim() != part.dim():
            raise ValueError(
                f"Cannot join an output of shape {tuple(part.shape)} to earlier ones of shape "
                f"(N, {', '.join(map(str, data.shape[1:]))}): the number of dimensions changed "
                "between batches."
            )
        trailing = tuple(max(a, b) for a, b in zip(data.shape[1:], part.shape[1:], strict=True))
        capacity = data.shape[0] if rows <= data.shape[0] else max(rows, 2 * data.shape[0])
        if trailing != tuple(data.shape[1:]) or capacity != data.shape[0]:
            grown = data.new_full((capacity, *trailing), _pad_value(data.dtype, self.padding_index))
            used = (slice(0, self.rows), *(slice(0, s) for s in data.shape[1:]))
            grown[used] = data[: self.rows]
            self.data = grown
        return self.data  # type: ignore[return-value]  # set above

    def result(self) -> torch.Tensor | None:
        """The joined rows; a copy only when the buffer holds over a third more than needed."""
        self._flush()
        if self.data is None:
            return None
        joined = self.data[: self.rows]
        if self.data.shape[0] * 3 > self.rows * 4:
            joined = joined.clone()
            self.data = joined
        return joined


class NestedAccumulator:
    """Joins batches of nested outputs, one :class:`RowBuffer` per tensor leaf.

    ``capacity`` and ``limit`` are passed to each :class:`RowBuffer`.
    """

    def __init__(
        self,
        capacity: int | None = None,
        padding_index: int = PADDING_INDEX,
        limit: int | None = None,
    ) -> None:
        self.capacity = capacity
        self.padding_index = padding_index
        self.limit = limit
        self.buffers: Any = None

    def add(self, batch: Any) -> None:
        """Append one batch; it must have the structure of the first one."""
        if isinstance(self.buffers, RowBuffer) and isinstance(batch, torch.Tensor):
            self.buffers.add(batch)  # a plain tensor: skip the structure walk
            return
        if self.buffers is None:
            self.buffers = map_nested(self._new_buffer, batch)
        map_nested(_add_leaf, self.buffers, batch)

    def _new_buffer(self, leaf: Any) -> RowBuffer | None:
        if leaf is None:
            return None
        return RowBuffer(self.capacity, self.padding_index, self.limit)

    def result(self) -> Any:
        """The joined outputs with the batches' nesting, or None when nothing was added."""
        if self.buffers is None:
            return None
        return map_nested(
            lambda buffer: buffer.result() if buffer is not None else None, self.buffers
        )


def _add_leaf(buffer: RowBuffer | None, leaf: Any) -> None:
    if buffer is None or leaf is None:
        return
    if not isinstance(leaf, torch.Tensor):
        leaf = torch.as_tensor(leaf)
    buffer.add(leaf)


def concatenate(batches: list[Any], padding_index: int = PADDING_INDEX) -> Any:
    """Join per-batch outputs along the first dimension, keeping the nesting.

    Each batch has the same structure; tensors whose later dimensions differ are padded
    with ``padding_index``. Each leaf is written into one buffer, so the cost is linear
    in the output size.
    """
    rows = sum(first_dim(batch) for batch in batches)
    accumulator = NestedAccumulator(rows, padding_index)
    for batch in batches:
        accumulator.add(batch)
    return accumulator.result()


def to_numpy(data: Any) -> Any:
    """Convert nested tensors to numpy arrays (bfloat16 goes through float32)."""

    def convert(leaf: Any) -> Any:
        if not isinstance(leaf, torch.Tensor):
            return leaf
        leaf = leaf.detach().cpu()
        return (leaf.float() if leaf.dtype == torch.bfloat16 else leaf).numpy()

    return map_nested(convert, data)


def truncate(data: Any, limit: int) -> Any:
    """Keep the first ``limit`` rows of every array (drops samples repeated to fill batches)."""
    return map_nested(
        lambda leaf: leaf[:limit] if isinstance(leaf, (torch.Tensor, np.ndarray)) else leaf, data
    )


def first_dim(data: Any) -> int:
    """Rows in the first tensor found in ``data`` (a 0-d tensor counts as one row).

    Raises:
        TypeError: ``data`` holds no tensor.
    """
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return data.shape[0] if data.ndim else 1
    if isinstance(data, Mapping):
        for value in data.values():
            found = _first_dim_or_none(value)
            if found is not None:
                return found
    elif isinstance(data, (list, tuple)):
        for value in data:
            found = _first_dim_or_none(value)
            if found is not None:
                return found
    raise TypeError(f"Cannot find a tensor in {type(data).__name__}")


def _first_dim_or_none(data: Any) -> int | None:
    try:
        return first_dim(data)
    except TypeError:
        return None
