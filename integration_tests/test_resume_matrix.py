"""Stopped at step k by a callback and resumed: the run ends as the uninterrupted one did,
in the configurations the other resume tests leave out.

Every pair (see ``resume_matrix_worker.py``) trains a tiny GPT-2 with dropout on token
rows padded with ``-100`` labels, stops mid-epoch, resumes with other initial weights,
and must end with the same weights and optimizer state, bit for bit, and log the same
losses and learning rates after the stop.

Not exact by design, and checked here as such: ``ignore_data_skip`` restarts the
interrupted epoch (the run then trains on other batches than the uninterrupted one).
Also not exact, and not tested: random work inside ``dataloader_num_workers`` workers
(their seeds are drawn when the epoch's iterator is created, and a resumed pass does
not read the skipped items); the reference behaves the same way.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import IterableDataset

from ._scripts import HERE, load_script

pytestmark = pytest.mark.slow

matrix = load_script("resume_matrix_worker.py")
launcher = load_script("test_distributed_worker.py")


def _assert_exact(report: dict[str, Any]) -> None:
    assert report["steps"][0] == report["steps"][1]
    assert report["weights"] == 0.0
    assert report["optimizer"] == 0.0
    assert report["logs_equal"]


@pytest.mark.parametrize(
    ("accumulation", "average", "stop"),
    # 13 batches an epoch: windows 2,...,2,1 (7 steps) or 3,3,3,3,1 (5 steps)
    [(2, False, 3), (3, True, 6)],
)
def test_accumulated_windows_resume_exactly(tmp_path, accumulation, average, stop) -> None:
    report = matrix.compare_pair(
        str(tmp_path),
        stop,
        gradient_accumulation_steps=accumulation,
        average_tokens_across_devices=average,
    )
    _assert_exact(report)


def _unpadded_rows() -> list[dict[str, torch.Tensor]]:
    rows = matrix.token_rows(26)
    return [{k: v[: int(row["attention_mask"].sum())] for k, v in row.items()} for row in rows]


def _pad(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    longest = max(len(row["input_ids"]) for row in batch)
    fills = {"input_ids": 0, "attention_mask": 0, "labels": -100}
    return {
        key: torch.stack(
            [
                torch.cat([row[key], row[key].new_full((longest - len(row[key]),), fill)])
                for row in batch
            ]
        )
        for key, fill in fills.items()
    }


def test_length_grouped_data_seeded_loader_with_workers_resumes_exactly(tmp_path) -> None:
    report = matrix.compare_pair(
        str(tmp_path),
        4,
        group_by_length=True,
        data_seed=7,
        dataloader_num_workers=2,
        gradient_accumulation_steps=2,
        make_options=lambda: {"train_dataset": _unpadded_rows(), "data_collator": _pad},
    )
    _assert_exact(report)


class _ShuffledStream(IterableDataset):
    """Token rows in an order drawn from torch's generator at every pass."""

    def __init__(self) -> None:
        self.rows = matrix.token_rows(26)

    def __iter__(self):
        order = torch.randperm(len(self.rows)).tolist()
        return (self.rows[index] for index in order)


def test_a_stream_with_max_steps_resumes_exactly(tmp_path) -> None:
    # 13 batches a pass: step 5 is inside the first pass, and max_steps crosses into a third
    report = matrix.compare_pair(
        str(tmp_path), 5, max_steps=16, make_options=lambda: {"train_dataset": _ShuffledStream()}
    )
    _assert_exact(report)


# dynamo reads ``.grad`` of non-leaf tensors while tracing transformers' loss: torch's
# own warning, raised inside tracing, not something the Trainer does.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf")
def test_a_compiled_model_resumes_exactly_and_saves_plain_weights(tmp_path) -> None:
    from safetensors import safe_open
    from transformers import GPT2LMHeadModel

    report = matrix.compare_pair(
        str(tmp_path), 3, torch_compile_backend="aot_eager", gradient_accumulation_steps=2
    )
    _assert_exact(report)
    checkpoint = tmp_path / "stopped" / "checkpoint-3"
    weights = checkpoint / "model.safetensors"
    if not weights.exists():
        weights = checkpoint / "pytorch_model.bin"
        keys = list(torch.load(weights, weights_only=True))
    else:
        with safe_open(str(weights), framework="pt") as handle:
            keys = list(handle.keys())
    assert keys and not [key for key in keys if "_orig_mod" in key]
    loaded = GPT2LMHeadModel.from_pretrained(str(checkpoint))
    assert set(loaded.state_dict()) >= set(keys)


def test_ignore_data_skip_restarts_the_epoch_and_a_changed_batch_size_warns(
    tmp_path, caplog
) -> None:
    full = matrix.run(str(tmp_path / "full"), stop=4)
    checkpoint = str(tmp_path / "full" / "checkpoint-4")
    restarted = matrix.run(str(tmp_path / "again"), resume=checkpoint, ignore_data_skip=True)
    exact = matrix.run(str(tmp_path / "exact"), resume=checkpoint)
    assert full.state.global_step == 4
    assert restarted.state.global_step == exact.state.global_step == 26  # 13 steps x 2 epochs
    pairs = zip(
        restarted.model.state_dict().values(), exact.model.state_dict().values(), strict=True
    )
    assert any(not torch.equal(a, b) for a, b in pairs)  # other batches: not the same run
    with caplog.at_level(logging.WARNING):
        matrix.run(str(tmp_path / "resized"), resume=checkpoint, per_device_train_batch_size=4)
    assert "per_device_train_batch_size: 4 in this run, 2 in trainer_state.json" in caplog.text


@pytest.mark.multiprocess
def test_two_processes_with_accumulation_resume_exactly(tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(launcher.free_port()),
        str(HERE / "resume_matrix_worker.py"),
        str(tmp_path),
    ]
    reports = launcher.run_launched(command, tmp_path, 2, timeout=150)
    for report in reports:
        assert report["world_size"] == 2
        for average in (True, False):
            _assert_exact(report[f"average_tokens={average}"])
