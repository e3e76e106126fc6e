"""``accelerator_config={"split_batches": True}`` on 2 DDP processes (gloo, torchrun):
the loader's batch is the global batch and each process trains on its half of it, so
the run ends where one process with that batch ends (gradient accumulation included);
the logged batch sizes, evaluation, prediction, an uneven last batch and a mid-epoch
resume stay right.

The worker is ``split_batches_worker.py``; the reference is the same script run by
plain ``python`` (one process, no split, the same batch of 4). Two launches: that one,
and one torchrun launch whose 2 processes train every split run one after the other
(each launch costs seconds of start-up).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ._scripts import HERE, load_script

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

worker = load_script("test_distributed_worker.py")
SCRIPT = HERE / "split_batches_worker.py"
BASE = {
    "per_device_train_batch_size": 4,
    "per_device_eval_batch_size": 4,
    "gradient_accumulation_steps": 2,
}
SPLIT = {**BASE, "accelerator_config": {"split_batches": True}}
# The run header's label, the reference's word for word.
_TOTAL = "Total train batch size (w. parallel, distributed & accumulation)"


def _run(out: Path, runs: dict[str, dict[str, Any]], *, processes: int) -> list[Any]:
    """Launch the worker for ``runs`` (name -> overrides, trained in order, each in
    ``out/<name>``); return each rank's report."""
    if processes == 1:
        command = [sys.executable]
    else:
        port = str(worker.free_port())
        command = [str(worker.BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port]
    command += [str(SCRIPT), str(out), json.dumps(runs)]
    return worker.run_launched(command, out, processes)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process, batches of 4, 2 micro-batches a step: the run to reproduce."""
    return _run(tmp_path_factory.mktemp("single"), {"single": BASE}, processes=1)[0]["single"]


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """2 processes: ``split``; ``whole``, 18 samples with a checkpoint every step; and
    ``resumed``, the same run resumed from ``whole``'s checkpoint-1 (inside epoch 1)."""
    out = tmp_path_factory.mktemp("split")
    uneven = {**SPLIT, "dataset_size": 18}
    runs = {
        "split": SPLIT,
        "whole": {**uneven, "save_strategy": "steps", "save_steps": 1},
        "resumed": {**uneven, "resume_from_checkpoint": str(out / "whole" / "checkpoint-1")},
    }
    return out, _run(out, runs, processes=2)


@pytest.fixture(scope="module")
def split(launched: tuple[Path, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The ``split`` run of each rank, with the group facts."""
    _, reports = launched
    return worker.scenario_reports(reports, "split")


def test_each_process_trains_on_its_half_of_every_batch(
    single: dict[str, Any], split: list[dict[str, Any]]
) -> None:
    first, second = split
    assert first["world_size"] == 2 and first["ranks"] == [0, 1]
    assert all(len(batch) == 2 for batch in first["batches"] + second["batches"])
    # Rank 0 holds the first half of each one-process batch, rank 1 the second half.
    joined = [a + b for a, b in zip(first["batches"], second["batches"], strict=True)]
    assert joined == single["batches"]
    assert first["steps"] == single["steps"] == 4  # 4 batches an epoch, 2 a step


def test_split_batches_end_at_the_one_process_weights(
    single: dict[str, Any], split: list[dict[str, Any]]
) -> None:
    assert worker.max_difference(split[0]["weights"], split[1]["weights"]) == 0.0
    assert worker.max_difference(split[0]["weights"], single["weights"]) < 1e-5


def test_the_logged_batch_sizes_are_the_real_ones(
    single: dict[str, Any], split: list[dict[str, Any]]
) -> None:
    assert split[0]["train_batch_size"] == single["train_batch_size"] == 4
    assert "Instantaneous batch size per device = 2" in split[0]["header"]
    assert f"{_TOTAL} = 8" in split[0]["header"]  # 4 a micro-step, 2 of them
    assert f"{_TOTAL} = 8" in single["header"]


def test_evaluation_and_prediction_hold_every_sample_once(
    single: dict[str, Any], split: list[dict[str, Any]]
) -> None:
    for report in split:  # 7 samples: slices of 2, then 2 and 1 real ones
        assert len(report["predictions"]) == 7
        assert report["eval_loss"] == pytest.approx(single["eval_loss"], abs=1e-5)
        difference = max(
            abs(a - b) for a, b in zip(report["predictions"], single["predictions"], strict=True)
        )
        assert difference < 1e-5


def test_an_uneven_end_and_a_mid_epoch_resume(
    launched: tuple[Path, list[dict[str, Any]]],
) -> None:
    """18 samples: each epoch ends with 2 real samples of 4, filled from the epoch's
    start; resuming inside the first epoch ends at the uninterrupted run's weights."""
    _, reports = launched
    whole = [report["whole"] for report in reports]
    last = [whole[0]["batches"][4], whole[1]["batches"][4]]  # epoch 1's last batch
    first = whole[0]["batches"][0] + whole[1]["batches"][0]
    assert last[1] == first[:2]  # rank 1's half: the filler, not new samples
    assert whole[0]["steps"] == 6  # 5 batches an epoch: 3 steps
    resumed = [report["resumed"] for report in reports]  # from whole's checkpoint-1
    assert resumed[0]["steps"] == 6
    assert resumed[0]["batches"] == whole[0]["batches"][2:]
    assert resumed[1]["batches"] == whole[1]["batches"][2:]
    assert worker.max_difference(resumed[0]["weights"], whole[0]["weights"]) < 1e-6
