"""The nested-output helpers user evaluation loops import (``trainer_pt_utils``)."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import pytest
import torch

from trainer_loop import (
    EvalLoopContainer,
    atleast_1d,
    find_batch_size,
    nested_concat,
    nested_detach,
    nested_numpify,
    nested_truncate,
    numpy_pad_and_concatenate,
    torch_pad_and_concatenate,
)


class _Pair(NamedTuple):
    logits: torch.Tensor
    labels: torch.Tensor


def test_torch_pad_and_concatenate_pads_the_sequence_dimension_with_minus_100() -> None:
    joined = torch_pad_and_concatenate(torch.tensor([[1, 2]]), torch.tensor([[3, 4, 5], [6, 7, 8]]))
    assert joined.tolist() == [[1, 2, -100], [3, 4, 5], [6, 7, 8]]


def test_torch_pad_and_concatenate_pads_every_later_dimension_and_keeps_dtype() -> None:
    first, second = torch.ones(1, 2, 1), torch.zeros(1, 1, 2)
    joined = torch_pad_and_concatenate(first, second, padding_index=9)
    assert joined.shape == (2, 2, 2) and joined.dtype == torch.float32
    assert joined.tolist() == [[[1, 9], [1, 9]], [[0, 0], [9, 9]]]


def test_torch_pad_and_concatenate_counts_scalars_as_rows() -> None:
    assert torch_pad_and_concatenate(torch.tensor(1.0), torch.tensor([2.0])).tolist() == [1.0, 2.0]


def test_torch_pad_and_concatenate_refuses_different_ranks() -> None:
    with pytest.raises(RuntimeError):
        torch_pad_and_concatenate(torch.ones(2, 3), torch.ones(2, 3, 4))


def test_numpy_pad_and_concatenate_matches_the_torch_version() -> None:
    joined = numpy_pad_and_concatenate(np.array([[1.5, 2.5]]), np.array([[3.0]]))
    assert joined.dtype == np.float64
    assert joined.tolist() == [[1.5, 2.5], [3.0, -100.0]]


def test_nested_concat_keeps_the_containers() -> None:
    old = _Pair(torch.tensor([[1, 2]]), torch.tensor([0]))
    new = _Pair(torch.tensor([[3]]), torch.tensor([1]))
    joined = nested_concat(old, new)
    assert isinstance(joined, _Pair)
    assert joined.logits.tolist() == [[1, 2], [3, -100]] and joined.labels.tolist() == [0, 1]
    mapping = nested_concat(OrderedDict(a=[np.array([1])]), OrderedDict(a=[np.array([2])]), -1)
    assert type(mapping) is OrderedDict and mapping["a"][0].tolist() == [1, 2]


def test_nested_concat_refuses_different_types_as_the_reference_does() -> None:
    with pytest.raises(TypeError, match="same type, got tuple and list"):
        nested_concat((torch.ones(1),), [torch.ones(1)])
    with pytest.raises(AssertionError):  # what the reference's assert raises
        nested_concat({"a": torch.ones(1)}, [torch.ones(1)])
    with pytest.raises(TypeError, match="got str"):
        nested_concat("a", "b")


def test_find_batch_size_is_the_first_dimension_of_the_first_array() -> None:
    assert find_batch_size((None, {"x": torch.ones(3, 2)})) == 3
    assert find_batch_size([torch.tensor(1.0), np.ones(4)]) == 4  # a 0-d tensor is skipped
    assert find_batch_size(torch.tensor(1.0)) is None
    assert find_batch_size({"a": 1}) is None


def test_nested_numpify_detach_truncate() -> None:
    weight = torch.ones(2, requires_grad=True)
    outputs = (weight * 2, {"ids": torch.arange(3, dtype=torch.bfloat16)})
    detached = nested_detach(outputs)
    assert not detached[0].requires_grad and detached[0].tolist() == [2.0, 2.0]
    arrays = nested_numpify(detached)
    assert arrays[1]["ids"].dtype == np.float32 and arrays[1]["ids"].tolist() == [0, 1, 2]
    assert nested_truncate(arrays, 1)[1]["ids"].tolist() == [0.0]
    with pytest.raises(TypeError):
        nested_truncate([None], 1)


def test_atleast_1d_for_both_libraries() -> None:
    assert atleast_1d(torch.tensor(2)).shape == (1,)
    assert atleast_1d(np.float32(2)).shape == (1,)


def test_eval_loop_container_joins_batches_across_moves_to_numpy() -> None:
    container = EvalLoopContainer()
    container.add(torch.tensor([[1, 2]]))
    container.to_cpu_and_numpy()
    container.add(torch.tensor([[3, 4, 5]]))
    arrays = container.get_arrays()
    assert isinstance(arrays, np.ndarray)
    assert arrays.tolist() == [[1, 2, -100], [3, 4, 5]]
    assert container.tensors is None


def test_eval_loop_container_without_concat_keeps_one_item_per_batch() -> None:
    container = EvalLoopContainer(do_nested_concat=False)
    assert container.get_arrays() is None
    container.add(torch.tensor([1]))
    container.add(torch.tensor([2, 3]))
    container.to_cpu_and_numpy()
    container.add(torch.tensor([4]))
    assert [a.tolist() for a in container.get_arrays()] == [[1], [2, 3], [4]]
