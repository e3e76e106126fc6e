"""Resuming DeepSpeed checkpoints on another number of processes: the pure decisions.

Reading a checkpoint's layout from its file names, choosing how to load it, refusing what
DeepSpeed's universal conversion cannot carry, and the repairs applied after DeepSpeed's
universal loader. The files here are empty stand-ins named as DeepSpeed names them; only
the failed-conversion test imports deepspeed. Real conversions run in integration_tests/
test_distributed_deepspeed.py (2 processes to 1 and back).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from trainer_dist._deepspeed_universal import (
    ZeroCheckpointLayout,
    _convert_beside,
    check_universal_optimizer,
    checkpoint_tag,
    choose_load_path,
    convert_to_universal,
    read_zero_layout,
    restore_group_settings,
    separate_step_counters,
)

TAG = "global_step4"


def write_checkpoint(folder: Path, names: list[str], *, tag: str = TAG) -> Path:
    """A checkpoint folder whose ``tag`` sub-folder holds empty files called ``names``."""
    (folder / tag).mkdir(parents=True)
    (folder / "latest").write_text(tag)
    (folder / "zero_to_fp32.py").write_text("")
    for name in names:
        (folder / tag / name).write_bytes(b"")
    return folder


def zero2_files(ranks: int) -> list[str]:
    optimizer = [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(ranks)]
    return ["mp_rank_00_model_states.pt", *optimizer]


def zero3_files(ranks: int, prefix: str = "") -> list[str]:
    model = [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in range(ranks)]
    optimizer = [f"{prefix}zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(ranks)]
    return model + optimizer


def layout(world_size: int | None, *, zero3: bool = False, mp: int = 1) -> ZeroCheckpointLayout:
    return ZeroCheckpointLayout(TAG, world_size, zero3, mp)


# ------------------------------------------------------------------ reading
def test_zero2_checkpoint_of_two_processes(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path, zero2_files(2))
    assert read_zero_layout(str(folder)) == ZeroCheckpointLayout(TAG, 2, False, 1)


def test_zero3_bf16_checkpoint_of_three_processes(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path, zero3_files(3, prefix="bf16_"))
    assert read_zero_layout(str(folder)) == ZeroCheckpointLayout(TAG, 3, True, 1)


def test_zero0_checkpoint_has_no_partitions(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path, ["mp_rank_00_model_states.pt"])
    assert read_zero_layout(str(folder)).world_size is None


def test_model_parallel_ranks_are_counted(tmp_path: Path) -> None:
    names = [f"zero_pp_rank_{d}_mp_rank_0{m}_optim_states.pt" for d in (0, 1) for m in (0, 1)]
    folder = write_checkpoint(tmp_path, names)
    assert read_zero_layout(str(folder)).model_parallel_size == 2


def test_an_explicit_tag_is_read_instead_of_latest(tmp_path: Path) -> None:
    folder = write_checkpoint(tmp_path, zero2_files(2))
    (tmp_path / "global_step9").mkdir()
    for name in zero2_files(4):
        (tmp_path / "global_step9" / name).write_bytes(b"")
    assert read_zero_layout(str(folder), "global_step9").world_size == 4
    assert checkpoint_tag(str(folder)) == TAG


def test_missing_partitions_are_reported(tmp_path: Path) -> None:
    names = [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 2)]
    folder = write_checkpoint(tmp_path, names)
    with pytest.raises(ValueError, match=r"ranks \[0, 2\] only"):
        read_zero_layout(str(folder))


def test_a_folder_without_latest_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no 'latest' file"):
        read_zero_layout(str(tmp_path))


def test_latest_naming_a_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "latest").write_text("global_step7\n")
    with pytest.raises(FileNotFoundError, match=r"'global_step7'.*no such folder"):
        read_zero_layout(str(tmp_path))


# ---------------------------------------------------------------- choosing
@pytest.mark.parametrize(
    ("saved", "stage", "world_size", "with_optimizer", "expected"),
    [
        (layout(2), 2, 2, True, "direct"),
        (layout(2, zero3=True), 3, 2, True, "direct"),
        (layout(2), 2, 1, True, "universal"),
        (layout(2), 1, 4, True, "universal"),  # ZeRO-1 and 2 share one layout
        (layout(1, zero3=True), 3, 2, True, "universal"),
        (layout(2), 2, 1, False, "merged"),
        (layout(2, zero3=True), 2, 2, False, "merged"),  # weights only: any layout
        (layout(None), 0, 4, True, "direct"),  # no partitions: one full optimizer state
        (layout(2), 0, 1, True, "direct"),  # ZeRO-0 reads no partitions
    ],
)
def test_load_path(
    saved: ZeroCheckpointLayout, stage: int, world_size: int, with_optimizer: bool, expected: str
) -> None:
    path = choose_load_path(
        saved, zero_stage=stage, world_size=world_size, with_optimizer=with_optimizer
    )
    assert path == expected


@pytest.mark.parametrize(("zero3", "stage"), [(True, 2), (False, 3)])
def test_optimizer_state_does_not_move_between_zero3_and_zero12(zero3: bool, stage: int) -> None:
    with pytest.raises(ValueError, match=r"ckpt' was written by 2 .*this run has 1") as info:
        choose_load_path(
            layout(2, zero3=zero3),
            zero_stage=stage,
            world_size=1,
            with_optimizer=True,
            directory="ckpt",
        )
    assert f"this run uses ZeRO-{stage}" in str(info.value)
    assert "zero_optimization.stage" in str(info.value)


def test_model_parallel_checkpoints_are_refused_on_another_world_size() -> None:
    with pytest.raises(ValueError, match="2 model-parallel ranks"):
        choose_load_path(layout(4, mp=2), zero_stage=2, world_size=2, with_optimizer=True)


# ------------------------------------------------------- optimizer support
def _parameters() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))]


@pytest.mark.parametrize("optimizer_class", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_state_converts(optimizer_class: type[torch.optim.Optimizer]) -> None:
    check_universal_optimizer(optimizer_class(_parameters()), layout(2), world_size=1)


def test_sgd_state_would_be_lost() -> None:
    optimizer = torch.optim.SGD(_parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer is SGD") as info:
        check_universal_optimizer(optimizer, layout(4), world_size=2, directory="out/ckpt")
    message = str(info.value)
    assert "'out/ckpt' was written by 4 data-parallel processes; this run has 2" in message
    assert "Resume on 4 processes" in message


def test_amsgrad_maxima_would_be_lost() -> None:
    optimizer = torch.optim.AdamW(_parameters(), amsgrad=True)
    with pytest.raises(ValueError, match="AdamW with amsgrad=True"):
        check_universal_optimizer(optimizer, layout(2), world_size=1)


# ----------------------------------------------------- repairs after loading
def _two_groups() -> torch.optim.AdamW:
    weight, bias = _parameters()
    groups = [{"params": [weight], "weight_decay": 0.1}, {"params": [bias], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=0.05)


def test_each_group_gets_its_saved_settings_back() -> None:
    optimizer = _two_groups()
    parameters = [group["params"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:  # what DeepSpeed's ZeRO-3 loader leaves
        group.update(weight_decay=0.1, lr=0.5)
    saved = [
        {"params": [0], "weight_decay": 0.1, "lr": 0.025},
        {"params": [1], "weight_decay": 0.0, "lr": 0.025},
    ]
    restore_group_settings(optimizer, saved)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.1, 0.0]
    assert [group["lr"] for group in optimizer.param_groups] == [0.025, 0.025]
    assert [group["params"] for group in optimizer.param_groups] == parameters


def test_another_number_of_groups_is_refused() -> None:
    with pytest.raises(ValueError, match=r"has 1 optimizer parameter groups; this run's .* 2"):
        restore_group_settings(_two_groups(), [{"params": [0], "lr": 0.1}])


def test_groups_sharing_one_step_tensor_get_their_own() -> None:
    optimizer = _two_groups()
    weight, bias = (group["params"][0] for group in optimizer.param_groups)
    shared = torch.tensor(4.0)
    optimizer.state[weight] = {"step": shared, "exp_avg": torch.zeros(2)}
    optimizer.state[bias] = {"step": shared, "exp_avg": torch.zeros(1)}
    separate_step_counters(optimizer)
    first, second = optimizer.state[weight]["step"], optimizer.state[bias]["step"]
    assert first is not second
    first += 1  # Adam advances the counter in place
    assert (float(first), float(second)) == (5.0, 4.0)


def test_separate_step_counters_keep_plain_numbers() -> None:
    optimizer = _two_groups()
    weight = optimizer.param_groups[0]["params"][0]
    optimizer.state[weight] = {"step": 3}
    separate_step_counters(optimizer)
    assert optimizer.state[weight]["step"] == 3


# ------------------------------------------------------- the temporary copy
def test_a_copy_that_cannot_be_created_is_reported_before_converting(tmp_path: Path) -> None:
    """The copy's folder name adds to the checkpoint's; past the file system's name limit
    it cannot be created (a read-only parent fails the same way, but not for root)."""
    folder = write_checkpoint(tmp_path / ("c" * 250), zero2_files(2))
    root, message = _convert_beside(str(folder), TAG)
    assert root is None
    assert message is not None
    assert "Copy the checkpoint into a folder this run can write to" in message
    assert sorted(os.listdir(tmp_path)) == ["c" * 250]


def test_a_failed_conversion_says_what_to_do_and_leaves_the_source(tmp_path: Path) -> None:
    pytest.importorskip("deepspeed")
    folder = write_checkpoint(tmp_path / "checkpoint-4", zero2_files(2))  # empty files
    before = sorted(path.name for path in (folder / TAG).iterdir())
    expected = r"universal conversion of .*global_step4' failed"
    with pytest.raises(RuntimeError, match=expected) as info:
        convert_to_universal(str(folder), TAG, str(tmp_path / "copy"))
    assert "Resume on as many processes as wrote the checkpoint" in str(info.value)
    assert sorted(path.name for path in (folder / TAG).iterdir()) == before
