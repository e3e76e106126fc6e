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


def rebuild(template: Any, values: Any) -> Any:
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
        return rebuild(data, values)
    if isinstance(data, (list, tuple)):
        if any(not isinstance(o, (list, tuple)) or len(o) != len(data) for o in others):
            raise ValueError(_structure_message(data, others))
        items = [map_nested(function, v, *(o[i] for o in others)) for i, v in enumerate(data)]
        return rebuild(data, items)
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

    Speed: parts are held (up to 64, or as many as fit in 8 MiB judging by the first)
    and written with one ``torch.cat`` into the buffer, so a small batch costs a list
    append, not a copy.
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
        self._pending: list[torch.Tensor] = []  # parts held until the next write
        self._max_held = _PENDING_PARTS  # parts to hold: up to 64, ~8 MiB by the first
        self._accepted = 0  # rows taken so far, counted only under a limit

    def add(self, part: torch.Tensor) -> None:
        """Append ``part``'s rows (a 0-d tensor counts as one row).

        This runs once per batch and output, so it only holds the part: rows are counted
        and trailing shapes compared when the held parts are written (:meth:`_flush`).
        """
        if part.requires_grad:  # joined values carry no autograd history
            part = part.detach()
        if not part.ndim:
            part = part.reshape(1)
        if self.limit is not None:
            part = self._within_limit(part, self.limit)
            if part is None:
                return
        pending = self._pending
        pending.append(part)
        if len(pending) == 1:  # the first part of a group sets how many to hold
            self._max_held = max(1, min(_PENDING_PARTS, _PENDING_BYTES // max(part.nbytes, 1)))
        if len(pending) >= self._max_held:
            self._flush()

    def _within_limit(self, part: torch.Tensor, limit: int) -> torch.Tensor | None:
        """``part`` cut to the rows still under ``limit``; None when none are."""
        seen = self._accepted
        if seen + part.shape[0] > limit:
            part = part[: max(limit - seen, 0)]
            if part.shape[0] == 0:
                return None
        self._accepted = seen + part.shape[0]
        return part

    def _flush(self) -> None:
        """Write the held parts: in one ``torch.cat`` when they share a trailing shape
        and dtype casting allows (the usual case), else one part at a time."""
        pending = self._pending
        if not pending:
            return
        try:
            self._write_joined(pending, sum(part.shape[0] for part in pending))
        except RuntimeError:  # shapes differ within the held parts, or a dtype will not cast
            for part in pending:
                self._write_one(part)
        pending.clear()

    def _write_joined(self, parts: list[torch.Tensor], count: int) -> None:
        """Write ``parts`` (``count`` rows in all) after the rows written so far.

        Raises:
            RuntimeError: ``torch.cat`` refused the parts; nothing counts as written then.
        """
        first = parts[0]
        data = self._reserve(self.rows + count, first)
        if data.shape[1:] != first.shape[1:]:
            raise RuntimeError("the parts are narrower than the buffer")
        target = data.narrow(0, self.rows, count)  # contiguous: whole rows of ``data``
        if len(parts) == 1:
            target.copy_(first)
        else:
            torch.cat(parts, out=target)
        self.rows += count

    def _write_one(self, part: torch.Tensor) -> None:
        """Write one part into the top-left corner of its rows (the rest stays padding)."""
        rows = part.shape[0]
        data = self._reserve(self.rows + rows, part)
        data[(slice(self.rows, self.rows + rows), *map(slice, part.shape[1:]))] = part
        self.rows += rows

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
        if isinstance(batch, torch.Tensor) and isinstance(self.buffers, RowBuffer):
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
