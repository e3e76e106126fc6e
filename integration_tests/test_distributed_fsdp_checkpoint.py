"""FSDP2 checkpoints through the training loop, on 2 CPU processes over gloo (torchrun).

With full (``FULL_STATE_DICT``) and with sharded (``SHARDED_STATE_DICT``) checkpoints:
a run resumed from a mid-epoch checkpoint ends with the weights of the run that never
stopped; ``load_best_model_at_end`` restores the best checkpoint; ``save_model`` writes
the gathered full weights; only the main process writes anything but its own RNG file
and shards; and both kinds of checkpoints resume on one process, while a sharded
checkpoint written by one FSDP process resumes on two. The training script is
``checkpoint_worker.py``.

Three launches: torchrun with 1 process (``fsdp_alone``); torchrun with 2 processes,
which run ``fsdp`` and then resume ``fsdp_alone``'s checkpoint (``fsdp_from_one``: one
launch for both, as each launch costs seconds of start-up); and plain ``python``
(``one``), which resumes the 2-process checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainer_checkpoint import FolderCheckpointStore, list_checkpoints, read_weights

from ._scripts import load_script

worker = load_script("checkpoint_worker.py")
max_difference = worker.base.max_difference

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

FORMATS = ["full", "sharded"]


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """``fsdp_alone`` (torchrun, 1 process): its folder and report."""
    out = tmp_path_factory.mktemp("fsdp_alone")
    return out, worker.launch(out, "fsdp_alone", processes=1, torchrun=True)[0]


@pytest.fixture(scope="module")
def two_processes(
    tmp_path_factory: pytest.TempPathFactory, alone: tuple[Path, dict[str, Any]]
) -> tuple[Path, list[dict[str, Any]]]:
    """torchrun, 2 processes: ``fsdp``, then ``fsdp_from_one`` (which resumes ``alone``'s
    checkpoint, hence after it); each scenario's results under its name."""
    out = tmp_path_factory.mktemp("fsdp_checkpoints")
    checkpoints = ["--checkpoints", str(alone[0])]
    return out, worker.launch(out, "fsdp,fsdp_from_one", *checkpoints)


@pytest.fixture(scope="module")
def fsdp(two_processes: tuple[Path, list[dict[str, Any]]]) -> tuple[Path, list[dict[str, Any]]]:
    """The ``fsdp`` scenario: its folder, and each rank's results with the group facts."""
    out, reports = two_processes
    return out / "fsdp", worker.base.scenario_reports(reports, "fsdp")


def _stored(folder: Path) -> dict[str, list[float]]:
    return worker.base.weights_of(read_weights(str(folder)))


def test_the_processes_train_as_one_fsdp_group(fsdp: tuple[Path, list[dict[str, Any]]]) -> None:
    _, reports = fsdp
    for report in reports:
        assert (report["world_size"], report["ranks"]) == (2, [0, 1])
    main = reports[0]
    assert [main[name]["runtime"] for name in FORMATS] == ["FSDPRuntime"] * 2
    assert [main[name]["format"] for name in FORMATS] == FORMATS


@pytest.mark.parametrize("name", FORMATS)
def test_a_run_resumed_mid_epoch_ends_like_the_uninterrupted_one(
    fsdp: tuple[Path, list[dict[str, Any]]], name: str
) -> None:
    _, (main, _replica) = fsdp
    resumed = main[f"{name}_resumed"]
    assert resumed["steps"] == main[name]["steps"] == 8
    # checkpoint-3 is inside the first epoch (4 steps): sampler position, optimizer,
    # scheduler and weights all have to come back for the weights to agree.
    assert max_difference(resumed["weights"], main[name]["weights"]) < 1e-6


def test_full_checkpoints_hold_the_gathered_weights(
    fsdp: tuple[Path, list[dict[str, Any]]],
) -> None:
    out, (main, _replica) = fsdp
    folder = out / "full"
    assert [Path(p).name for p in list_checkpoints(str(folder))] == [
        "checkpoint-3",
        "checkpoint-6",
        "checkpoint-8",
    ]
    last = folder / "checkpoint-8"
    assert {"optimizer.pt", "rng_state_0.pth", "rng_state_1.pth"} <= {
        p.name for p in last.iterdir()
    }
    assert not FolderCheckpointStore().is_sharded(str(last))
    assert max_difference(_stored(last), main["full"]["weights"]) == 0.0
    optimizer = torch.load(last / "optimizer.pt", weights_only=True)
    assert "blocks.0.linear.weight" in optimizer["state"]  # the full state, by name


def test_sharded_checkpoints_hold_shards_and_the_marker(
    fsdp: tuple[Path, list[dict[str, Any]]],
) -> None:
    out, _ = fsdp
    folder = out / "sharded"
    assert len(list_checkpoints(str(folder))) == 3
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".tmp")]
    last = folder / "checkpoint-8"
    names = {p.name for p in last.iterdir()}
    assert {"pytorch_model_fsdp_0", "optimizer_0", "sharded_state.json"} <= names
    assert {"rng_state_0.pth", "rng_state_1.pth", "scheduler.pt", "trainer_state.json"} <= names
    assert not names & {"optimizer.pt", "model.safetensors", "pytorch_model.bin"}
    shards = sorted(p.name for p in (last / "pytorch_model_fsdp_0").iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # one file per process
    assert FolderCheckpointStore().is_sharded(str(last))


@pytest.mark.parametrize("name", FORMATS)
def test_load_best_model_at_end_restores_the_best_checkpoint(
    fsdp: tuple[Path, list[dict[str, Any]]], name: str
) -> None:
    out, (main, _replica) = fsdp
    best = main[f"{name}_best"]
    assert Path(best["best"]) == out / f"{name}_best" / "checkpoint-4"  # the score peaked there
    assert max_difference(best["weights"], best["saved"]["4"]) == 0.0
    assert max_difference(best["weights"], best["saved"]["8"]) > 1e-3


def test_save_model_writes_the_full_weights(fsdp: tuple[Path, list[dict[str, Any]]]) -> None:
    out, (main, _replica) = fsdp
    assert max_difference(_stored(out / "save_model"), main["save_model"]) == 0.0


def test_only_the_main_process_writes_shared_files(
    fsdp: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, (_main, replica) = fsdp
    writes = replica["writes"]
    # Process 1's shards are among its writes: the recorder sees what it should.
    assert ["open", "sharded/.tmp-checkpoint-3/pytorch_model_fsdp_0/__1_0.distcp"] in writes
    for event, path in writes:
        assert event in ("open", "os.mkdir"), (event, path)  # never renames nor deletes
        assert "/.tmp-checkpoint-" in f"/{path}", path  # only inside the folder being built
        if event == "open":  # its own shards and random states, nothing shared
            assert path.endswith(("__1_0.distcp", "/rng_state_1.pth")), path


def test_checkpoints_of_two_processes_resume_on_one(
    fsdp: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    out, (main, _replica) = fsdp
    one = worker.launch(tmp_path, "one", "--checkpoints", str(out), processes=1)[0]
    for name in FORMATS:
        assert one[name]["runtime"] == "SingleProcessRuntime"
        assert one[name]["steps"] == 8
        # One process with batch 4 = two with batch 2 each (same global batch).
        assert max_difference(one[name]["weights"], main[name]["weights"]) < 1e-5


def test_a_sharded_checkpoint_of_one_process_resumes_on_two(
    fsdp: tuple[Path, list[dict[str, Any]]],
    alone: tuple[Path, dict[str, Any]],
    two_processes: tuple[Path, list[dict[str, Any]]],
) -> None:
    """The other direction: torch's distributed checkpoint reshards one process's state
    (weights and optimizer) over two, mid-epoch (sampler position included)."""
    _, (main, _replica) = fsdp
    _, lone = alone
    assert (lone["sharded"]["runtime"], lone["sharded"]["format"]) == ("FSDPRuntime", "sharded")
    assert lone["world_size"] == 1
    _, reports = two_processes  # fsdp_from_one resumed alone's checkpoint-3 on 2 processes
    assert [report["world_size"] for report in reports] == [2, 2]
    resumed = reports[0]["fsdp_from_one"]["sharded"]
    assert resumed["steps"] == lone["sharded"]["steps"] == 8
    assert max_difference(resumed["weights"], lone["sharded"]["weights"]) < 1e-5
    assert max_difference(resumed["weights"], main["sharded"]["weights"]) < 1e-5
