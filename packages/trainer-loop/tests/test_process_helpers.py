"""Process-group helpers (``trainer_pt_utils`` / ``trainer_utils``) in a 1-process gloo group."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from trainer_loop import (
    distributed_broadcast_scalars,
    distributed_concat,
    is_main_process,
    reissue_pt_warnings,
    torch_distributed_zero_first,
    total_processes_number,
)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[None]:
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("group")
def test_distributed_concat_gathers_nested_tensors() -> None:
    gathered = distributed_concat({"logits": torch.ones(3, 2), "loss": (torch.tensor(0.5),)})
    assert gathered["logits"].shape == (3, 2)
    assert gathered["loss"][0].tolist() == [0.5]  # 0-d tensors become one row
    assert distributed_concat(torch.arange(4), num_total_examples=3).tolist() == [0, 1, 2]


@pytest.mark.usefixtures("group")
def test_distributed_broadcast_scalars_and_process_counts() -> None:
    gathered = distributed_broadcast_scalars([1.5, 2.5], device=torch.device("cpu"))
    assert gathered.tolist() == [1.5, 2.5]
    assert distributed_broadcast_scalars([1, 2, 3], 2, torch.device("cpu")).tolist() == [1, 2]
    assert total_processes_number(0) == 1
    with torch_distributed_zero_first(0):  # rank 0 runs first, then meets the others
        ran = True
    assert ran


def test_without_a_group() -> None:
    assert total_processes_number(-1) == 1
    assert is_main_process(-1) and is_main_process(0) and not is_main_process(1)
    with torch_distributed_zero_first(-1):
        pass
    with pytest.raises(ValueError, match="process group"):
        distributed_concat(torch.ones(1))


def test_reissue_pt_warnings_drops_user_warnings() -> None:
    caught = [
        warnings.WarningMessage(UserWarning("noise"), UserWarning, "f.py", 1),
        warnings.WarningMessage(FutureWarning("kept"), FutureWarning, "f.py", 2),
    ]
    with pytest.warns(FutureWarning, match="kept"):
        reissue_pt_warnings(caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reissue_pt_warnings(caught[1:])  # a single recorded warning is not reissued
