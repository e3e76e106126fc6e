"""``state.num_input_tokens_seen`` as callbacks read it between logs, under DDP.

transformers 5 gathers every micro-batch's token count from all processes as it trains,
so ``on_substep_end`` and ``on_step_end`` see the group's running count on every
process, and a token-budget callback stops all of them at the same step. The logged
counts and the final one are the group's totals.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

HERE = Path(__file__).parent
base = load_script("test_distributed_worker.py")
worker = load_script("token_callback_worker.py")

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

PROCESSES = 2
PER_ROW = {"all": worker.LENGTH, "non_padding": worker.REAL}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("torchrun")
    command = [
        str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", str(PROCESSES),
        "--master_port", str(base.free_port()), str(HERE / "token_callback_worker.py"),
        str(out),
    ]  # fmt: skip
    return base.run_launched(command, out, PROCESSES)


def _micro(mode: str) -> int:
    """Tokens one micro-batch adds to the group's count."""
    return PROCESSES * worker.BATCH * PER_ROW[mode]


@pytest.mark.parametrize("mode", ["all", "non_padding"])
def test_every_process_sees_the_group_count_after_each_micro_batch(
    reports: list[dict[str, Any]], mode: str
) -> None:
    micro = _micro(mode)
    steps = worker.ROWS // (PROCESSES * worker.BATCH * 2)
    for report in reports:
        run = report[mode]
        assert run["substeps"] == [micro * (2 * step + 1) for step in range(steps)]
        assert run["steps"] == [micro * 2 * (step + 1) for step in range(steps)]
        assert run["logged"] == run["steps"][1::2]  # logging_steps=2
        assert run["final"] == run["final_logged"] == worker.ROWS * PER_ROW[mode]


@pytest.mark.parametrize("mode", ["all", "non_padding"])
def test_a_token_budget_stops_every_process_at_the_same_step(
    reports: list[dict[str, Any]], mode: str
) -> None:
    per_step = 2 * _micro(mode)
    stop = -(-worker.BUDGET // per_step)  # the first step whose count reaches the budget
    for report in reports:
        run = report[f"{mode}_budget"]
        assert run["global_step"] == stop
        assert run["steps"] == [per_step * (step + 1) for step in range(stop)]
