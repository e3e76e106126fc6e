"""Seeding: two seeded runs draw identical numbers from python, numpy and torch."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from trainer_dist import enable_full_determinism, set_seed

_ENV = ("CUBLAS_WORKSPACE_CONFIG", "FLASH_ATTENTION_DETERMINISTIC")


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    """Full determinism is process-wide: put every switch back after the test."""
    saved_env = {name: os.environ.get(name) for name in _ENV}
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]
    for name, value in saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _draw() -> tuple[float, np.ndarray, torch.Tensor]:
    return random.random(), np.random.rand(4), torch.rand(4)


def test_two_seeded_runs_draw_identical_numbers() -> None:
    set_seed(123)
    first = _draw()
    set_seed(123)
    second = _draw()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    assert torch.equal(first[2], second[2])


def test_different_seeds_draw_different_numbers() -> None:
    set_seed(1)
    first = _draw()
    set_seed(2)
    second = _draw()
    assert first[0] != second[0]
    assert not np.array_equal(first[1], second[1])
    assert not torch.equal(first[2], second[2])


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "42"])
def test_unusable_seeds_are_refused(seed: object) -> None:
    with pytest.raises(ValueError, match=r"between 0 and 4294967295"):
        set_seed(seed)  # type: ignore[arg-type]  # invalid on purpose


@pytest.mark.usefixtures("restore_determinism")
def test_deterministic_seeding_turns_on_full_determinism(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    set_seed(5, deterministic=True)
    drawn = _draw()
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert os.environ["FLASH_ATTENTION_DETERMINISTIC"] == "1"
    set_seed(5)
    assert torch.equal(_draw()[2], drawn[2])  # same generators as plain seeding


@pytest.mark.usefixtures("restore_determinism")
def test_full_determinism_keeps_a_users_cublas_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    enable_full_determinism(0, warn_only=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.is_deterministic_algorithms_warn_only_enabled()
