"""Launcher environment readings and the placement a process trains with."""

from __future__ import annotations

import pytest
import torch

from trainer_dist._environment import ProcessPlacement, launched_world_size, placement_in_group

LONE_PROCESS = ProcessPlacement(
    num_processes=1,
    process_index=0,
    local_process_index=0,
    device=torch.device("cpu"),
    n_gpu=0,
)


def test_world_size_is_read_from_the_first_launcher_variable_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launched_world_size() == 1
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "3")
    assert launched_world_size() == 3
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_world_size() == 4


def test_a_world_size_that_is_not_a_number_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        launched_world_size()


def test_a_placement_that_agrees_with_the_group_is_kept() -> None:
    assert placement_in_group(LONE_PROCESS, size=1, rank=0) is LONE_PROCESS


def test_the_group_ranks_replace_a_placement_that_saw_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    corrected = placement_in_group(LONE_PROCESS, size=4, rank=3)
    assert (corrected.num_processes, corrected.process_index) == (4, 3)
    assert corrected.local_process_index == 1
    assert corrected.device == torch.device("cpu")
    assert corrected.n_gpu == 0


def test_without_local_rank_the_global_rank_is_the_local_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert placement_in_group(LONE_PROCESS, size=2, rank=1).local_process_index == 1


def test_a_local_rank_that_is_not_a_number_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCAL_RANK", "first")
    with pytest.raises(ValueError, match="LOCAL_RANK='first'"):
        placement_in_group(LONE_PROCESS, size=2, rank=1)
