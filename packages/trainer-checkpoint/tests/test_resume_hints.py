"""What a resume from a folder that is not there says, depending on what was passed."""

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
