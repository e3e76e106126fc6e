"""A run with dropout, resumed mid-epoch on 2 processes, ends with the weights of the run
that never stopped.

The sharded training loader used to create its inner ``DataLoader`` iterator only at the
first batch. That iterator draws its seed from torch's global generator, so on resume the
draw came after the checkpoint's generator states were restored: every later dropout mask
shifted and the weights drifted (on one CPU process the loader is not wrapped, and that
resume was exact). transformers' Trainer resumes these runs exactly.

One torchrun launch trains both runs (see ``dropout_resume_worker.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._scripts import HERE, load_script

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

worker = load_script("test_distributed_worker.py")


def test_a_mid_epoch_resume_on_two_processes_reproduces_the_dropout_run(tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(worker.free_port()),
        str(HERE / "dropout_resume_worker.py"),
        str(tmp_path),
    ]
    reports = worker.run_launched(command, tmp_path, 2, timeout=120)
    full = [report["full"] for report in reports]
    assert [report["world_size"] for report in full] == [2, 2]
    # resumed (in a folder holding only the mid-epoch checkpoint-2) in the same processes
    resumed = [report["resumed"] for report in reports]
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    for before, after in zip(full, resumed, strict=True):
        assert worker.max_difference(before["weights"], after["weights"]) == 0.0
