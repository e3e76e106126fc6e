"""Joining per-batch outputs: padding with -100, nesting kept, linear cost."""

from __future__ import annotations

import numpy as np
import torch

from trainer_loop._nested import concatenate, first_dim, to_numpy, truncate


def test_tensors_of_different_lengths_are_padded_with_minus_100() -> None:
    joined = concatenate([torch.ones(2, 3), torch.zeros(1, 5)])
    assert joined.shape == (3, 5)
    assert torch.equal(joined[0], torch.tensor([1.0, 1, 1, -100, -100]))
    assert torch.equal(joined[2], torch.zeros(5))


def test_nesting_of_tuples_and_dicts_is_kept() -> None:
    batches = [({"a": torch.ones(2)}, torch.zeros(2, 1)), ({"a": torch.ones(3)}, torch.zeros(3, 1))]
    joined = concatenate(batches)
    assert isinstance(joined, tuple) and isinstance(joined[0], dict)
    assert joined[0]["a"].shape == (5,)
    assert joined[1].shape == (5, 1)


def test_scalars_become_rows() -> None:
    assert concatenate([torch.tensor(1.0), torch.tensor(2.0)]).tolist() == [1.0, 2.0]


def test_numpy_conversion_handles_bfloat16_and_truncation() -> None:
    arrays = to_numpy((torch.ones(4, dtype=torch.bfloat16), torch.arange(4)))
    assert arrays[0].dtype == np.float32
    assert truncate(arrays, 2)[1].tolist() == [0, 1]
    assert first_dim({"x": torch.zeros(7, 2)}) == 7
