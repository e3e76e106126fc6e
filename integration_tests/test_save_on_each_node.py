"""``save_on_each_node`` with two real "nodes": two torchrun agents on this machine.

``torchrun --nnodes 2 --node_rank {0,1} --nproc_per_node 1`` twice, meeting on
localhost; each node writes into its own output folder (``<run>/node<N>``), so the
folders behave like the disks of two machines that share no storage. Without
``save_on_each_node`` only node 0 gets checkpoints (node 1 writes nothing at all); with
it both nodes get complete checkpoints (also under FSDP, whose full weights each node's
main process gathers) and each node resumes from its own copy. Sharded checkpoints,
which need storage shared by all processes, fail with a clear error on both nodes
instead of leaving each node a checkpoint with half the shards. The training script is
``checkpoint_worker.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer_checkpoint import list_checkpoints, read_weights

from ._scripts import load_script

worker = load_script("checkpoint_worker.py")
max_difference = worker.base.max_difference

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("nodes")
    return out, worker.launch_two_nodes(out, "nodes")


def _steps(folder: Path) -> list[str]:
    return [Path(path).name for path in list_checkpoints(str(folder))]


def test_two_nodes_of_one_process_form_one_group(nodes: tuple[Path, list[dict[str, Any]]]) -> None:
    _, reports = nodes
    for rank, report in enumerate(reports):
        assert (report["world_size"], report["ranks"]) == (2, [0, 1])
        assert (report["node"], report["local_rank"]) == (rank, 0)  # each its node's main


def test_without_save_on_each_node_only_node_0_writes(
    nodes: tuple[Path, list[dict[str, Any]]],
) -> None:
    out, _ = nodes
    run = out / "ddp_main_only"
    assert _steps(run / "node0") == ["checkpoint-4", "checkpoint-8"]
    assert not (run / "node1").exists()  # not even a staging folder or an RNG file
    names = {p.name for p in (run / "node0" / "checkpoint-4").iterdir()}
    assert "rng_state_0.pth" in names and "rng_state_1.pth" not in names


@pytest.mark.parametrize("run", ["ddp_each_node", "fsdp_each_node"])
def test_with_save_on_each_node_every_node_gets_complete_checkpoints(
    nodes: tuple[Path, list[dict[str, Any]]], run: str
) -> None:
    out, reports = nodes
    for node in (0, 1):
        folder = out / run / f"node{node}"
        assert _steps(folder) == ["checkpoint-4", "checkpoint-8"]
        names = {p.name for p in (folder / "checkpoint-4").iterdir()}
        assert {"optimizer.pt", "scheduler.pt", "trainer_state.json"} <= names
        assert f"rng_state_{node}.pth" in names  # each process's RNG file on its own node
        stored = worker.base.weights_of(read_weights(str(folder / "checkpoint-8")))
        # The full weights, also on node 1 under FSDP (gathered for each node's main).
        assert max_difference(stored, reports[0][run]["weights"]) == 0.0


def test_each_node_resumes_from_its_own_copy(nodes: tuple[Path, list[dict[str, Any]]]) -> None:
    _, reports = nodes
    for report in reports:
        resumed, uninterrupted = report["ddp_each_node_resumed"], report["ddp_each_node"]
        assert resumed["steps"] == 8
        assert max_difference(resumed["weights"], uninterrupted["weights"]) < 1e-6


def test_sharded_checkpoints_without_shared_storage_fail_clearly_on_every_node(
    nodes: tuple[Path, list[dict[str, Any]]],
) -> None:
    out, reports = nodes
    for node, report in enumerate(reports):
        assert "do not all see that folder" in report["sharded_error"]
        folder = out / "fsdp_sharded_each_node" / f"node{node}"
        assert list(folder.iterdir()) == []  # no checkpoint, no staging folder left


def test_with_save_on_each_node_on_shared_storage_one_checkpoint_is_published(
    nodes: tuple[Path, list[dict[str, Any]]],
) -> None:
    """Both nodes' main processes write into the same staging folder; the first of them
    publishes it, whole, with both processes' RNG files (the second rename failed)."""
    out, reports = nodes
    folder = out / "ddp_each_node_shared"
    assert _steps(folder) == ["checkpoint-6", "checkpoint-8"]  # rotated to the limit
    names = {p.name for p in (folder / "checkpoint-8").iterdir()}
    assert {"rng_state_0.pth", "rng_state_1.pth", "optimizer.pt", "trainer_state.json"} <= names
    assert not [name for name in names if name.startswith(".")]  # no writer signatures
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no staging left
    stored = worker.base.weights_of(read_weights(str(folder / "checkpoint-8")))
    assert max_difference(stored, reports[0]["ddp_each_node_shared"]["weights"]) == 0.0
