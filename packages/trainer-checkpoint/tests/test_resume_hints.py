"""Finding the checkpoint to resume from, and what a missing one says."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer_checkpoint import CheckpointNotFoundError, check_checkpoint


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "checkpoint-7")
    with pytest.raises(CheckpointNotFoundError, match="no such folder") as caught:
        check_checkpoint(missing)
    assert missing in str(caught.value) and "command line" not in str(caught.value)


def test_the_string_true_from_a_command_line_is_explained() -> None:
    # `--resume_from_checkpoint True` arrives as the string "True", not the boolean.
    with pytest.raises(CheckpointNotFoundError, match=r"resume_from_checkpoint=True\)"):
        check_checkpoint("True")


def test_get_last_checkpoint_returns_the_newest_complete_folder(tmp_path: Path) -> None:
    from trainer_checkpoint import TRAINER_STATE_NAME, get_last_checkpoint

    assert get_last_checkpoint(str(tmp_path / "not-yet")) is None
    assert get_last_checkpoint(str(tmp_path)) is None
    for step in (5, 10, 20):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if step != 20:  # checkpoint-20 is half-written: no trainer state, no weights
            (folder / TRAINER_STATE_NAME).write_text("{}")
            (folder / "model.safetensors").write_bytes(b"")
    (tmp_path / "checkpoint-final").mkdir()  # not a step: ignored
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
