"""A script that starts its own processes and group, without a launcher, trains them
together: the runtime follows the group the arguments already report, not the absent
launcher variables (each process training alone on all the data was the failure)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ._scripts import load_script

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

base = load_script("test_distributed_worker.py")

WORKER = Path(__file__).with_name("spawned_group_worker.py")


def test_a_group_the_script_started_itself_trains_as_one(tmp_path: Path) -> None:
    command = [sys.executable, str(WORKER), str(tmp_path), str(base.free_port())]
    first, second = base.run_launched(command, tmp_path, 2, timeout=120)
    assert [first["runtime_processes"], second["runtime_processes"]] == [2, 2]
    assert [first["runtime_index"], second["runtime_index"]] == [0, 1]
    assert [first["world_process_zero"], second["world_process_zero"]] == [True, False]
    # Two steps of 2 x 4 rows cover the 16 rows once; a lone process would reach 0.5.
    assert first["epoch"] == second["epoch"] == 1.0
    assert first["weights"] == second["weights"]  # gradients were averaged across the two
