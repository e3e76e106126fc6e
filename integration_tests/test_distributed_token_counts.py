"""Loss normalisation by the token count of every process, and tokens seen, under DDP.

A causal LM's loss is a mean over the label tokens of the batch. With several processes
each holding a different number of tokens, the reference divides every process's summed
loss by the token count of the whole global batch (``average_tokens_across_devices``),
so 2 processes reach the weights of 1 process with the same global batch. Without it,
each process averages over its own tokens, and the weights differ: that run shows the
data really is uneven, so the first check can fail.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

HERE = Path(__file__).parent
base = load_script("test_distributed_worker.py")

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

WORKER = HERE / "token_count_worker.py"


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process with the whole global batch, trained in this process."""
    worker = load_script("token_count_worker.py")
    return worker.train(str(tmp_path_factory.mktemp("single")), average=True)


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("torchrun")
    command = [
        str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
        "--master_port", str(base.free_port()), str(WORKER), str(out),
    ]  # fmt: skip
    return base.run_launched(command, out, 2)


@pytest.fixture(scope="module")
def averaged(launched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [report["averaged"] for report in launched]


def test_two_processes_normalised_by_all_tokens_train_like_one(
    averaged: list[dict[str, Any]], single: dict[str, Any]
) -> None:
    assert [report["world_size"] for report in averaged] == [2, 2]
    assert averaged[0]["runtime"] == "DistributedRuntime"
    assert base.max_difference(averaged[0]["weights"], single["weights"]) < 2e-5
    assert base.max_difference(averaged[0]["weights"], averaged[1]["weights"]) == 0.0


def test_logged_losses_and_tokens_seen_are_those_of_the_whole_group(
    averaged: list[dict[str, Any]], single: dict[str, Any]
) -> None:
    assert averaged[0]["losses"] == pytest.approx(single["losses"], abs=1e-4)
    assert averaged[0]["tokens_seen"] == single["tokens_seen"] == 2 * 16 * 12


def test_without_averaging_across_processes_the_weights_differ(
    launched: list[dict[str, Any]], single: dict[str, Any]
) -> None:
    own = launched[0]["own"]
    assert base.max_difference(own["weights"], single["weights"]) > 1e-4
    # Each process's loss is a mean over its own tokens: the same size as the averaged
    # one (an untrained model's first loss), not scaled by the number of processes.
    assert own["losses"][0] == pytest.approx(single["losses"][0], rel=0.2)
