"""``trainer.accelerator`` and ``args.distributed_state`` on 2 DDP processes (gloo,
torchrun), as a TRL-style subclass uses them inside ``compute_loss`` and ``evaluate``:
process facts, ``unwrap_model`` of the DDP wrapper, ``reduce``, ``gather``,
``pad_across_processes`` and ``gather_for_metrics`` over an uneven evaluation set,
``split_between_processes``, ``no_sync`` and ``accumulate`` around backward passes of a
model the accelerator prepared, and the (absent) trackers.

The worker is ``accelerator_facade_worker.py``; the same script on transformers'
Trainer is the reference the report is compared with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ._scripts import HERE, load_script

pytestmark = [pytest.mark.multiprocess, pytest.mark.slow]

worker = load_script("test_distributed_worker.py")
SCRIPT = HERE / "accelerator_facade_worker.py"
# Per-batch losses of evaluation (the last two entries) differ on purpose: the reference
# pads the last uneven batch with a repeated sample, our loader does not.
TRAIN_STEPS = 4


def _run(out: Path, backend: str) -> list[dict[str, Any]]:
    port = str(worker.free_port())
    command = [str(worker.BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", port]
    return worker.run_launched([*command, str(SCRIPT), backend, str(out)], out, 2)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _run(tmp_path_factory.mktemp("ours"), "ours")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    pytest.importorskip("transformers")
    return _run(tmp_path_factory.mktemp("reference"), "reference")


def test_subclass_sees_one_ddp_group_through_the_accelerator(ours: list[dict[str, Any]]) -> None:
    for rank, report in enumerate(ours):
        assert report["process_index"] == report["state_process_index"] == rank
        assert report["num_processes"] == report["state_num_processes"] == 2
        assert report["is_main_process"] is report["state_is_main_process"] is (rank == 0)
        assert report["distributed_type"] == report["state_distributed_type"]
        assert report["distributed_type"] == "DistributedType.MULTI_CPU"
        assert (report["wrapped"], report["unwrapped"]) == (
            "DistributedDataParallel",
            "TinyRegressor",
        )
        assert report["unwrapped_is_model"] is True
        assert report["reduce_sum"] == [3.0] and report["reduce_mean"] == [1.5]
        assert report["gather"] == [0, 1] and report["objects"] == ["rank0", "rank1"]
        assert report["padded"] == [[float(rank)] * 2]
        assert report["eval_ids"] == list(range(7))  # the padding's repeat dropped
        assert report["eval_texts"] == [f"s{i}" for i in range(7)]
        assert report["split"] == [[0, 1], [2]][rank]
        assert report["no_sync_grad"] == [[rank + 1.0]]  # not reduced
        assert report["accumulate_grad"] == [[1.5]] and report["accumulate_sync"] is True
        assert (report["trackers"], report["tracker"]) == (0, "GeneralTracker")
        assert report["group_ended"] is True  # Trainer.end() left the group


def test_matches_transformers_trainer(
    ours: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> None:
    for mine, theirs in zip(ours, reference, strict=True):
        devices = (torch.device(mine.pop("device")), torch.device(theirs.pop("device")))
        assert devices[0].type == devices[1].type
        assert torch.device(mine.pop("state_device")) == torch.device(theirs.pop("state_device"))
        assert mine.pop("losses")[:TRAIN_STEPS] == pytest.approx(theirs.pop("losses")[:TRAIN_STEPS])
        assert mine.pop("eval_logits") == pytest.approx(theirs.pop("eval_logits"), abs=1e-6)
        del mine["eval_loss"], theirs["eval_loss"]  # see the note on TRAIN_STEPS
        assert mine == theirs


def test_one_process_trainer_has_an_accelerator(tmp_path: Path) -> None:
    """Alone, ``trainer.accelerator`` is made once per runtime, unwraps what the runtime
    prepared, and can be replaced by assignment (as scripts that build their own do)."""
    from trainer import Trainer

    model = worker.make_model()
    args = worker.training_args(str(tmp_path), max_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=worker.make_dataset(4))
    accelerator = trainer.accelerator
    assert trainer.accelerator is accelerator and accelerator.runtime is trainer.runtime
    assert accelerator.num_processes == trainer.args.distributed_state.num_processes == 1
    trainer.train()
    assert accelerator.unwrap_model(trainer.model_wrapped) is model
    replacement = object()
    trainer.accelerator = replacement
    assert trainer.accelerator is replacement
