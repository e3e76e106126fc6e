"""Joining per-batch outputs: padding with -100, nesting kept, one buffer, linear cost."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch

from trainer_loop._nested import (
    NestedAccumulator,
    RowBuffer,
    concatenate,
    first_dim,
    map_nested,
    to_numpy,
    truncate,
)


def test_tensors_of_different_lengths_are_padded_with_minus_100() -> None:
    joined = concatenate([torch.ones(2, 3), torch.zeros(1, 5)])
    assert joined.shape == (3, 5)
    assert torch.equal(joined[0], torch.tensor([1.0, 1, 1, -100, -100]))
    assert torch.equal(joined[2], torch.zeros(5))


def test_a_wider_part_in_the_middle_pads_earlier_and_later_rows() -> None:
    joined = concatenate([torch.ones(1, 2, 2), torch.full((1, 3, 1), 2.0), torch.ones(1, 1, 3)])
    assert joined.shape == (3, 3, 3)
    assert joined[0, :2, :2].eq(1).all() and joined[0, 2:].eq(-100).all()
    assert joined[1, :, 0].eq(2).all() and joined[1, :, 1:].eq(-100).all()
    assert joined[2, 0].eq(1).all() and joined[2, 1:].eq(-100).all()


def test_nesting_of_tuples_dicts_and_named_tuples_is_kept() -> None:
    pair = namedtuple("pair", "left right")
    batches = [
        ({"a": torch.ones(2)}, pair(torch.zeros(2, 1), torch.ones(2))),
        ({"a": torch.ones(3)}, pair(torch.zeros(3, 1), torch.ones(3))),
    ]
    joined = concatenate(batches)
    assert isinstance(joined, tuple) and isinstance(joined[0], dict)
    assert isinstance(joined[1], pair)
    assert joined[0]["a"].shape == (5,)
    assert joined[1].left.shape == (5, 1)
    assert isinstance(map_nested(lambda t: t, OrderedDict(a=1)), OrderedDict)


def test_batches_with_different_structures_are_refused_with_an_explanation() -> None:
    accumulator = NestedAccumulator()
    accumulator.add((torch.ones(1), torch.ones(1)))
    with pytest.raises(ValueError, match="share one structure"):
        accumulator.add((torch.ones(1),))
    with pytest.raises(ValueError, match="number of dimensions"):
        concatenate([torch.ones(2, 2), torch.ones(2)])


def test_scalars_become_rows_and_none_leaves_stay_none() -> None:
    assert concatenate([torch.tensor(1.0), torch.tensor(2.0)]).tolist() == [1.0, 2.0]
    joined = concatenate([(torch.ones(1), None), (torch.ones(2), None)])
    assert joined[1] is None and joined[0].shape == (3,)


def _addresses(buffer: RowBuffer, parts) -> set[int]:
    """The distinct storages the buffer wrote into while ``parts`` were added."""
    seen = set()
    for part in parts:
        buffer.add(part)
        if buffer.data is not None:
            seen.add(buffer.data.data_ptr())
    return seen


def test_a_known_capacity_is_allocated_once_and_filled_in_place() -> None:
    buffer = RowBuffer(capacity=1000)
    addresses = _addresses(buffer, (torch.arange(s, s + 10.0) for s in range(0, 1000, 10)))
    assert len(addresses) == 1  # never reallocated, so never copied
    result = buffer.result()
    assert result.data_ptr() in addresses and result.shape == (1000,)
    assert torch.equal(result, torch.arange(1000.0))


def test_small_parts_are_written_together_and_large_ones_at_once() -> None:
    buffer = RowBuffer(capacity=100)
    buffer.add(torch.ones(10))
    assert buffer.rows == 0  # held: one joint write later
    big = torch.ones(3 * 2**20)  # 12 MiB: past the holding threshold
    buffer = RowBuffer()
    buffer.add(big)
    assert buffer.rows == big.shape[0]


def test_an_unknown_capacity_grows_by_doubling() -> None:
    buffer = RowBuffer()
    addresses = _addresses(buffer, (torch.ones(1, 4) for _ in range(1000)))
    assert len(addresses) <= 11  # log2(1000) + 1 allocations: linear total copying
    result = buffer.result()
    assert result.shape == (1000, 4) and result.eq(1).all()
    assert result.shape[0] * 4 >= buffer.data.shape[0] * 3  # no large slack kept


def test_rows_past_the_limit_are_dropped() -> None:
    accumulator = NestedAccumulator(capacity=5, limit=5)
    for _ in range(3):
        accumulator.add({"x": torch.arange(2)})
    assert accumulator.result()["x"].tolist() == [0, 1, 0, 1, 0]


def test_bool_tensors_are_padded_with_false() -> None:
    joined = concatenate([torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 2, dtype=torch.bool)])
    assert joined.tolist() == [[True, False], [True, True]]


def test_numpy_conversion_handles_bfloat16_and_truncation() -> None:
    arrays = to_numpy((torch.ones(4, dtype=torch.bfloat16), torch.arange(4)))
    assert arrays[0].dtype == np.float32
    assert truncate(arrays, 2)[1].tolist() == [0, 1]


def test_first_dim_finds_the_first_tensor() -> None:
    assert first_dim({"x": torch.zeros(7, 2)}) == 7
    assert first_dim({"name": "text", "x": [torch.zeros(3)]}) == 3
    assert first_dim(torch.tensor(5)) == 1
    with pytest.raises(TypeError, match="Cannot find a tensor"):
        first_dim({"name": "text"})


def test_held_parts_of_mixed_widths_and_dtypes_are_written_one_by_one() -> None:
    buffer = RowBuffer(capacity=4)
    buffer.add(torch.ones(1, 3))
    buffer.add(torch.full((2, 1), 2, dtype=torch.int64))  # narrower, another dtype
    buffer.add(torch.full((1, 4), 3.5))  # wider than everything before
    result = buffer.result()
    assert result.dtype == torch.float32 and result.shape == (4, 4)
    assert result.tolist() == [
        [1, 1, 1, -100],
        [2, -100, -100, -100],
        [2, -100, -100, -100],
        [3.5, 3.5, 3.5, 3.5],
    ]
