"""``denumpify_detensorize`` and ``number_of_arguments`` (``trainer_utils`` helpers)."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from trainer_core import denumpify_detensorize, number_of_arguments


def test_plain_values_pass_through() -> None:
    metrics = {"accuracy": 0.5, "names": ["a", "b"], "pair": (1, None)}
    assert denumpify_detensorize(metrics) == metrics


def test_numpy_scalars_become_python_numbers() -> None:
    np = pytest.importorskip("numpy")
    result = denumpify_detensorize({"f1": np.float32(0.5), "n": [np.int64(3)], "a": np.ones(2)})
    assert result["f1"] == 0.5 and type(result["f1"]) is float
    assert result["n"] == [3] and type(result["n"][0]) is int
    assert isinstance(result["a"], np.ndarray)  # not a scalar: unchanged


def test_one_element_tensors_become_python_numbers() -> None:
    torch = pytest.importorskip("torch")
    result = denumpify_detensorize((torch.tensor([2]), torch.ones(2)))
    assert type(result) is tuple and result[0] == 2 and type(result[0]) is int
    assert result[1].shape == (2,)


def _three(a: Any, b: Any, c: Any = 1) -> None: ...


def test_number_of_arguments_counts_what_a_partial_leaves_open() -> None:
    assert number_of_arguments(_three) == 3
    assert number_of_arguments(functools.partial(_three, 1, c=2)) == 1
    assert number_of_arguments(lambda *args, **kwargs: None) == 2
