"""A launched script may coordinate its processes before it builds a Trainer.

Under the reference, building ``TrainingArguments`` in a launched process forms the
process group, so ``args.main_process_first()`` around dataset preprocessing really
makes the replicas wait, and a script may use ``torch.distributed`` after reading
``args.device``. Ours starts the group at those two calls (trainer-dist's process-group
hook), not when the arguments are built. The worker is early_group_worker.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

base = load_script("test_distributed_worker.py")

WORKER = Path(__file__).with_name("early_group_worker.py")
TORCHRUN = Path(sys.executable).parent / "torchrun"


def run(scenario: str, out: Path) -> list[dict[str, Any]]:
    port = str(base.free_port())
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", port, str(WORKER)]
    return base.run_launched([*command, scenario, str(out)], out, 2, timeout=120)


def test_main_process_first_before_the_trainer_holds_the_replicas(tmp_path: Path) -> None:
    main, replica = run("first", tmp_path)
    assert [main["group_after_arguments"], replica["group_after_arguments"]] == [False, False]
    assert replica["entered"] >= main["left"]  # the replica waited for the main process
    assert main["left"] - main["entered"] >= 1.5
    for report in (main, replica):
        assert report["world"] == 2 and report["backend"] == "gloo"
        assert report["runtime_processes"] == 2  # the Trainer kept the group


def test_reading_the_device_lets_the_script_use_the_group(tmp_path: Path) -> None:
    reports = run("device", tmp_path)
    assert [r["device"] for r in reports] == ["cpu", "cpu"]
    assert all(r["world"] == 2 and r["runtime_processes"] == 2 for r in reports)
