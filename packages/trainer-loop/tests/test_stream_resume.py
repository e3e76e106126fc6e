"""Resuming a finite stream (an IterableDataset read again every epoch) past its first
pass continues at the epoch and batch the checkpoint recorded, bit for bit."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn
from torch.utils.data import IterableDataset

from trainer_args import TrainingArguments
from trainer_core import LoadedCheckpoint, TrainerCallback
from trainer_loop import Trainer
from trainer_loop._resume import _stream_point


class _Stream(IterableDataset):
    """40 regression examples (10 batches of 4), then the end of the stream."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(40, 4, generator=generator)

    def __iter__(self) -> Any:
        for row in self.x:
            yield {"x": row, "labels": row.sum(dim=0, keepdim=True)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 16)
        self.drop = nn.Dropout(0.3)  # the resumed run must get the random state back too
        self.b = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.b(self.drop(torch.relu(self.a(x))))
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class _StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def _trainer(output_dir: str, callbacks: list[Any] | None = None) -> Trainer:
    args = TrainingArguments(
        output_dir=output_dir,
        max_steps=20,
        per_device_train_batch_size=4,
        save_steps=2,
        logging_steps=1,
        learning_rate=0.05,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=3,
    )
    return Trainer(model=_Net(), args=args, train_dataset=_Stream(), callbacks=callbacks)


def _losses(trainer: Trainer) -> list[tuple[int, float, float]]:
    history = trainer.state.log_history
    return [(e["step"], e["loss"], e["epoch"]) for e in history if "loss" in e]


def test_resuming_in_the_second_pass_of_a_stream_is_exact(tmp_path) -> None:
    full = _trainer(str(tmp_path / "full"))
    full.train()

    part_dir = str(tmp_path / "part")
    _trainer(part_dir, [_StopAt(14)]).train()
    resumed = _trainer(part_dir)
    resumed.train(resume_from_checkpoint=os.path.join(part_dir, "checkpoint-14"))

    assert resumed.state.global_step == 20
    assert _losses(resumed) == _losses(full)
    for ours, theirs in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_a_checkpoint_without_a_stream_position_reads_as_one_endless_epoch(tmp_path) -> None:
    trainer = _trainer(str(tmp_path))
    loaded = LoadedCheckpoint(path=str(tmp_path), rng_state={"cpu": torch.tensor([0])})
    point = _stream_point(trainer, loaded, 14)
    assert (point.epoch, point.batches_to_skip, point.mid_epoch) == (0, 14, True)
    recorded = {"sampler": {"stream_epoch": 1, "stream_batches": 4}}
    point = _stream_point(trainer, LoadedCheckpoint(path=str(tmp_path), rng_state=recorded), 14)
    assert (point.epoch, point.batches_to_skip, point.mid_epoch) == (1, 4, True)
