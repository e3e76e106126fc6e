"""The nested-output helpers of ``transformers.trainer_pt_utils``, for user loops.

Subclasses that override ``evaluation_loop`` or ``prediction_step`` build their own
accumulation out of these: detach a batch's outputs, move them to NumPy, join them to
the earlier batches (padding the sequence dimension with -100), and cut off the samples
a distributed sampler repeated. Containers (lists, tuples, named tuples, dicts and
``ModelOutput``-like mappings) are walked and rebuilt with their own type.

The Trainer's own evaluation loop does not use :func:`nested_concat`: joining batch by
batch copies the growing result each time, so it writes into preallocated buffers
instead (``trainer_loop._nested``). These functions keep the reference's pairwise
semantics because user code written against it relies on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import torch

from trainer_loop._nested import PADDING_INDEX, map_nested, rebuild, to_numpy

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


class _DifferentTypesError(TypeError, AssertionError):
    """Two batches of outputs of different container types.

    The reference checks this with ``assert``, so callers may catch AssertionError;
    it is a TypeError by nature. Being both keeps either ``except`` working.
    """


def atleast_1d(tensor_or_array: ArrayT) -> ArrayT:
    """``tensor_or_array`` with a 0-d value made 1-d, so that a scalar loss can be joined."""
    if isinstance(tensor_or_array, torch.Tensor):
        return torch.atleast_1d(tensor_or_array)
    return np.atleast_1d(tensor_or_array)


def _joined_shape(first: tuple[int, ...], second: tuple[int, ...]) -> tuple[int, ...]:
    """Rows of both, and the larger size of each later dimension."""
    trailing = tuple(max(a, b) for a, b in zip(first[1:], second[1:], strict=True))
    return (first[0] + second[0], *trailing)


def _corner(start: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The index of a block of ``shape`` placed at row ``start``, column 0."""
    return (slice(start, start + shape[0]), *(slice(0, size) for size in shape[1:]))


def torch_pad_and_concatenate(
    tensor1: torch.Tensor, tensor2: torch.Tensor, padding_index: int = PADDING_INDEX
) -> torch.Tensor:
    """Join two tensors along dimension 0, padding later dimensions with ``padding_index``.

    Batches of generated or variable-length outputs differ in sequence length; the
    shorter rows are filled with ``padding_index`` (-100, the value losses and metrics
    ignore). 0-d tensors count as one row. The result has ``tensor1``'s dtype and device.

    Raises:
        RuntimeError: The tensors differ in their number of dimensions (from ``torch.cat``).
    """
    first, second = torch.atleast_1d(tensor1), torch.atleast_1d(tensor2)
    if first.ndim == 1 or first.ndim != second.ndim or first.shape[1:] == second.shape[1:]:
        return torch.cat((first, second), dim=0)
    result = first.new_full(_joined_shape(first.shape, second.shape), padding_index)
    result[_corner(0, first.shape)] = first
    result[_corner(first.shape[0], second.shape)] = second
    return result


def numpy_pad_and_concatenate(
    array1: np.ndarray, array2: np.ndarray, padding_index: int = PADDING_INDEX
) -> np.ndarray:
    """:func:`torch_pad_and_concatenate` for NumPy arrays (the result has ``array1``'s dtype).

    Raises:
        ValueError: The arrays differ in their number of dimensions (from ``np.concatenate``).
    """
    first, second = np.atleast_1d(array1), np.atleast_1d(array2)
    if first.ndim == 1 or first.ndim != second.ndim or first.shape[1:] == second.shape[1:]:
        return np.concatenate((first, second), axis=0)
    result = np.full_like(first, padding_index, shape=_joined_shape(first.shape, second.shape))
    result[_corner(0, first.shape)] = first
    result[_corner(first.shape[0], second.shape)] = second
    return result


def nested_concat(tensors: Any, new_tensors: Any, padding_index: int = PADDING_INDEX) -> Any:
    """Join ``new_tensors`` after ``tensors``, leaf by leaf, with :func:`torch_pad_and_concatenate`
    (or the NumPy one for arrays).

    Both must have the same structure: the same container types, lengths and keys.

    Raises:
        TypeError: The two differ in type at some level (also an AssertionError, which
            the reference raises), or a leaf is neither a tensor nor an array.
        ValueError: Two lists or tuples differ in length.
    """
    both_tensors = isinstance(tensors, torch.Tensor) and isinstance(new_tensors, torch.Tensor)
    if not both_tensors and type(tensors) is not type(new_tensors):
        raise _DifferentTypesError(
            "nested_concat needs two values of the same type, got "
            f"{type(tensors).__name__} and {type(new_tensors).__name__}."
        )
    if isinstance(tensors, (list, tuple)):
        joined = [
            nested_concat(old, new, padding_index)
            for old, new in zip(tensors, new_tensors, strict=True)
        ]
        return rebuild(tensors, joined)
    if isinstance(tensors, torch.Tensor):
        return torch_pad_and_concatenate(tensors, new_tensors, padding_index)
    if isinstance(tensors, Mapping):
        joined_values = {
            key: nested_concat(old, new_tensors[key], padding_index) for key, old in tensors.items()
        }
        return rebuild(tensors, joined_values)
    if isinstance(tensors, np.ndarray):
        return numpy_pad_and_concatenate(tensors, new_tensors, padding_index)
    raise TypeError(
        f"nested_concat joins tensors, arrays and lists, tuples or dicts of them; got "
        f"{type(tensors).__name__}."
    )


def find_batch_size(tensors: Any) -> int | None:
    """The first dimension of the first tensor or array in ``tensors``, depth first.

    0-d values (a scalar loss) have no batch dimension and are skipped; None means
    nothing holds one, and callers then fall back to their own count.
    """
    if isinstance(tensors, (list, tuple)):
        values: Any = tensors
    elif isinstance(tensors, Mapping):
        values = tensors.values()
    elif isinstance(tensors, (torch.Tensor, np.ndarray)):
        return tensors.shape[0] if tensors.ndim >= 1 else None
    else:
        return None
    for value in values:
        found = find_batch_size(value)
        if found is not None:
            return found
    return None


def nested_numpify(tensors: Any) -> Any:
    """Every tensor of ``tensors`` as a NumPy array on the CPU (bfloat16 through float32,
    which NumPy lacks). Values that are not tensors are returned unchanged."""
    return to_numpy(tensors)


def nested_detach(tensors: Any) -> Any:
    """Every tensor of ``tensors`` detached from autograd (left on its device), so that
    stored outputs do not keep the graph of their batch alive."""
    return map_nested(
        lambda leaf: leaf.detach() if isinstance(leaf, torch.Tensor) else leaf, tensors
    )


def nested_truncate(tensors: Any, limit: int) -> Any:
    """The first ``limit`` rows of every leaf: drops the samples a distributed sampler
    repeated to give every process whole batches.

    Raises:
        TypeError: A leaf cannot be sliced (``None``, a number).
    """
    return map_nested(lambda leaf: leaf[:limit], tensors)


class EvalLoopContainer:
    """Collects one kind of evaluation output (logits, labels, inputs, losses) over batches.

    ``add`` keeps the batches on their device; ``to_cpu_and_numpy`` moves what was added
    so far to NumPy and appends it to :attr:`arrays`, so a loop can bound device memory
    by calling it every ``eval_accumulation_steps`` batches.

    Args:
        do_nested_concat: Join batches with :func:`nested_concat` (padding with
            ``padding_index``); with False each batch is kept as one item of a list.
        padding_index: The value shorter sequences are padded with.
    """

    def __init__(self, do_nested_concat: bool = True, padding_index: int = PADDING_INDEX) -> None:
        self.do_nested_concat = do_nested_concat
        self.padding_index = padding_index
        self.tensors: Any = None
        self.arrays: Any = None

    def add(self, tensors: Any) -> None:
        """Keep ``tensors`` (one batch's outputs) with the ones added before."""
        if self.tensors is None:
            self.tensors = tensors if self.do_nested_concat else [tensors]
        elif self.do_nested_concat:
            self.tensors = nested_concat(self.tensors, tensors, self.padding_index)
        else:
            self.tensors.append(tensors)

    def to_cpu_and_numpy(self) -> None:
        """Move the batches added since the last call to NumPy, after :attr:`arrays`."""
        if self.tensors is None:
            return
        arrays = nested_numpify(self.tensors)
        if self.arrays is None:
            self.arrays = arrays
        elif self.do_nested_concat:
            self.arrays = nested_concat(self.arrays, arrays, self.padding_index)
        else:
            self.arrays.extend(arrays)
        self.tensors = None

    def get_arrays(self) -> Any:
        """Everything added, as NumPy arrays (None when nothing was)."""
        self.to_cpu_and_numpy()
        return self.arrays
