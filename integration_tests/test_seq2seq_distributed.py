"""Seq2SeqTrainer on 2 CPU processes over gloo, launched by torchrun.

* Generation with FSDP-sharded weights must end although the processes finish
  generating at different steps (``synced_gpus``), and return one prediction per sample
  of an odd-sized evaluation set, equal to what the whole model generates alone.
* ``sortish_sampler`` under DDP: every process trains on whole batches of similar
  lengths, and together they cover the epoch once.

The worker is seq2seq_distributed_worker.py; each run is bounded by a timeout so that a
hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from trainer_loop import SortishSampler, seeded_generator

from ._scripts import load_script

pytest.importorskip("transformers")

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

base = load_script("test_distributed_worker.py")

WORKER = Path(__file__).with_name("seq2seq_distributed_worker.py")
TORCHRUN = Path(sys.executable).parent / "torchrun"
TIMEOUT_S = 120
EVAL_SIZE, MAX_NEW_TOKENS = 5, (2, 5)  # as in the worker
PAD = 0  # the worker's pad token id: it pads the shorter generations


def run_worker(scenario: str, out: Path) -> list[dict[str, Any]]:
    """Run ``scenario`` on 2 processes; return each rank's report, in rank order."""
    port = str(base.free_port())
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", port]
    return base.run_launched([*command, str(WORKER), scenario, str(out)], out, 2, timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Both scenarios in one launch: starting 2 processes costs more than either."""
    return run_worker("all", tmp_path_factory.mktemp("seq2seq"))


def test_sharded_generation_ends_in_step_and_returns_one_prediction_per_sample(
    runs: list[dict[str, Any]],
) -> None:
    reports = [run["generate"] for run in runs]
    main = reports[0]
    assert main["runtime"] == "FSDPRuntime" and main["shards_parameters"] is True
    assert main["parameter_types"] == ["DTensor"]  # the weights really were sharded
    # Both processes ran 2 batches and, synced, the same number of decoder passes, though
    # rank 0 stops generating 3 tokens earlier than rank 1.
    assert [r["prediction_steps"] for r in reports] == [2, 2]
    assert reports[0]["decoder_calls"] == reports[1]["decoder_calls"]
    assert reports[0]["predictions"] == reports[1]["predictions"]  # gathered on both
    predictions = main["predictions"]
    assert len(predictions) == EVAL_SIZE  # the filler sample of the uneven end is dropped
    # Batches of 2 dealt in turn: samples 0, 1 and 4 on rank 0, samples 2 and 3 on rank 1.
    owner = [0, 0, 1, 1, 0]
    for sample, row in enumerate(predictions):
        width = 1 + MAX_NEW_TOKENS[owner[sample]]  # the decoder start token, then new ones
        reference = main["reference"][sample]
        assert row[:width] == reference[:width], sample
        assert all(value == PAD for value in row[width:]), sample  # decodable ids
    assert {row[1] for row in predictions} != {predictions[0][1]}  # not one constant output


def test_sortish_batches_are_dealt_whole_to_the_processes(runs: list[dict[str, Any]]) -> None:
    reports = [run["sortish"] for run in runs]
    lengths = reports[0]["lengths"]
    assert [r["sampler"] for r in reports] == ["SortishSampler", "SortishSampler"]
    # Every process draws the same seeded order; batch i of it goes to process i % 2.
    order = list(SortishSampler(4, lengths, generator=seeded_generator(0)))
    batches = [order[start : start + 4] for start in range(0, len(order), 4)]
    assert reports[0]["batches"] == batches[0::2]
    assert reports[1]["batches"] == batches[1::2]
    trained = [i for report in reports for batch in report["batches"] for i in batch]
    assert sorted(trained) == list(range(len(lengths)))  # the epoch, once
    for report in reports:
        for batch in report["batches"]:
            batch_lengths = [lengths[i] for i in batch]
            assert batch_lengths == sorted(batch_lengths, reverse=True)
    assert max(lengths[i] for i in reports[0]["batches"][0]) == max(lengths)
