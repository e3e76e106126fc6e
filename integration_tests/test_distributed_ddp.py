"""DDP over gloo on 2 CPU processes, launched for real by torchrun, accelerate and
``python -m torch.distributed.launch``; compared with one process and the same global batch.

The training script is ``test_distributed_worker.py``; each process writes what it saw to
``rank<N>.json``. Every test checks that the processes formed one group of 2 and saw
different samples: two processes that each trained alone on all the data would also end
with identical weights, and that is the failure these tests are here to catch.

Four launches: torchrun, ``accelerate launch`` and ``torch.distributed.launch`` (2
processes each), and one plain ``python`` process that computes the one-process
reference and then resumes torchrun's checkpoint (one launch for both: each launch
costs seconds of start-up, and neither part depends on a fresh process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._scripts import load_script

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

worker = load_script("test_distributed_worker.py")
launch, max_difference = worker.launch, worker.max_difference
assert_one_group_with_sharded_data = worker.assert_one_group_with_sharded_data


@pytest.fixture(scope="module")
def ddp_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def torchrun_ddp(ddp_output: Path) -> list[dict[str, Any]]:
    return launch("torchrun", ddp_output, "ddp")


@pytest.fixture(scope="module")
def one_process(
    tmp_path_factory: pytest.TempPathFactory, torchrun_ddp: list[dict[str, Any]], ddp_output: Path
) -> dict[str, Any]:
    """One plain process: ``single`` (the reference), then ``resume`` of the checkpoint
    torchrun's 2 processes wrote (hence after ``torchrun_ddp``)."""
    checkpoint = str(ddp_output / "checkpoint-4")
    out = tmp_path_factory.mktemp("one_process")
    return launch("python", out, "single,resume", "--shards", checkpoint)[0]


@pytest.fixture(scope="module")
def single(one_process: dict[str, Any]) -> dict[str, Any]:
    """One process, batch 4: the reference the 2-process runs must reproduce."""
    return one_process["single"]


def test_two_processes_form_one_group_and_shard_the_data(
    torchrun_ddp: list[dict[str, Any]],
) -> None:
    assert_one_group_with_sharded_data(torchrun_ddp)
    assert [report["runtime"] for report in torchrun_ddp] == ["DistributedRuntime"] * 2


def test_ddp_trains_to_the_weights_of_one_process_with_the_same_global_batch(
    torchrun_ddp: list[dict[str, Any]], single: dict[str, Any]
) -> None:
    assert max_difference(torchrun_ddp[0]["weights"], torchrun_ddp[1]["weights"]) == 0.0
    assert max_difference(torchrun_ddp[0]["weights"], single["weights"]) < 1e-5
    assert torchrun_ddp[0]["losses"] == pytest.approx(single["losses"], abs=1e-4)
    assert torchrun_ddp[0]["steps"] == 8
    # Each process counted half the samples; the state holds the sum, as one process's.
    assert single["total_flos"] == 1000 * 16 * 2  # 16 samples, 2 epochs
    assert [report["total_flos"] for report in torchrun_ddp] == [single["total_flos"]] * 2


def test_evaluation_gathers_one_row_per_sample_at_an_uneven_end(
    torchrun_ddp: list[dict[str, Any]],
) -> None:
    # 7 samples, batches of 3 on 2 processes: in the second step rank 1 has no sample
    # left and runs a filler that must not reach the results.
    for report in torchrun_ddp:
        assert report["eval_ids"] == list(range(7))


def test_predict_and_evaluate_match_one_process(
    torchrun_ddp: list[dict[str, Any]], single: dict[str, Any]
) -> None:
    for report in torchrun_ddp:
        assert report["predictions"] == pytest.approx(single["predictions"], abs=1e-5)
        assert report["label_ids"] == single["label_ids"]  # one per sample, in order
        assert report["eval_loss"] == pytest.approx(single["eval_loss"], abs=1e-6)
        # Batch metrics see each sample once, not the filler of the uneven last step.
        assert report["batch_metric_labels"] == single["label_ids"]
        assert report["batch_metrics_eval_loss"] == pytest.approx(single["eval_loss"], abs=1e-6)


def test_accumulation_micro_steps_skip_the_gradient_all_reduce(
    torchrun_ddp: list[dict[str, Any]],
) -> None:
    # 4 micro-steps in windows of 2: one all-reduce per window, not one per micro-step.
    assert [report["reductions"] for report in torchrun_ddp] == [2, 2]


def test_collectives_and_main_process_first(torchrun_ddp: list[dict[str, Any]]) -> None:
    for report in torchrun_ddp:
        assert report["reduced"] == 0.5  # mean of ranks 0 and 1
        assert report["main_first"] == ["0", "1"]  # the replica waited for the main process
        assert report["main_first_args"] == ["0", "1"]  # TrainingArguments.main_process_first
    assert [report["args_world"] for report in torchrun_ddp] == [[2, 0, 0], [2, 1, 1]]


def test_log_levels_and_roles_per_rank(torchrun_ddp: list[dict[str, Any]]) -> None:
    main, replica = torchrun_ddp
    assert (main["log_level"], replica["log_level"]) == (20, 40)  # info / error
    assert (main["should_log"], replica["should_log"]) == (True, False)
    assert (main["should_save"], replica["should_save"]) == (True, False)


def test_accelerate_launch_with_gradient_accumulation(
    tmp_path: Path, single: dict[str, Any]
) -> None:
    # Batch 1 per process, 2 micro-steps per window, 2 processes: a global batch of 4.
    reports = launch("accelerate", tmp_path, "ddp", "--accumulation", "2")
    assert_one_group_with_sharded_data(reports)
    assert max_difference(reports[1]["weights"], single["weights"]) < 1e-5
    assert reports[0]["eval_ids"] == list(range(7))


def test_torch_distributed_launch_passes_local_rank(tmp_path: Path, single: dict[str, Any]) -> None:
    reports = launch("torch.distributed.launch", tmp_path, "ddp")
    assert_one_group_with_sharded_data(reports)
    assert [report["local_rank_argument"] for report in reports] == [0, 1]
    assert max_difference(reports[0]["weights"], single["weights"]) < 1e-5


def test_a_checkpoint_written_by_two_processes_resumes_on_one(
    ddp_output: Path, single: dict[str, Any], one_process: dict[str, Any]
) -> None:
    checkpoint = ddp_output / "checkpoint-4"
    # One set of weights and optimizer state (written by the main process), one RNG file
    # per process.
    assert (checkpoint / "optimizer.pt").is_file()
    assert sorted(p.name for p in checkpoint.glob("rng_state*")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    resumed = one_process["resume"]  # resumed from this checkpoint in one process
    assert resumed["steps"] == 8
    assert len(resumed["seen"]) == 16  # only the second epoch was left to train
    assert max_difference(resumed["weights"], single["weights"]) < 1e-5
