"""A run resumed with a larger batch lands in a later epoch than the one it was saved
in: it reads that epoch's own order, as the reference does, not the rest of the saved
pass (whose first part the run has just trained on)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer


class _RecordingData(Dataset):
    """38 samples; every index read is appended to ``reads``."""

    def __init__(self, reads: list[int]) -> None:
        self.x = torch.randn(38, 4, generator=torch.Generator().manual_seed(1))
        self.reads = reads

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.reads.append(index)
        return {"x": self.x[index], "labels": self.x[index].sum(0, keepdim=True)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


class _StopAtStep8(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step == 8:
            control.should_training_stop = True
        return control


def _trainer(output_dir: str, reads: list[int], callbacks=None, **overrides: Any) -> Trainer:
    options: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": 4,
        "num_train_epochs": 3,
        "save_steps": 8,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": 3,
    }
    args = TrainingArguments(**{**options, **overrides})
    data = _RecordingData(reads)
    return Trainer(model=_Net(), args=args, train_dataset=data, callbacks=callbacks)


def test_a_larger_batch_on_resume_reads_the_new_epochs_own_order(tmp_path) -> None:
    uninterrupted: list[int] = []
    _trainer(str(tmp_path / "full"), uninterrupted).train()
    epoch_one = uninterrupted[38:76]

    _trainer(str(tmp_path / "stopped"), [], callbacks=[_StopAtStep8()]).train()
    # Step 8 of batches of 4 is inside epoch 0; with batches of 8 (5 steps an epoch) it
    # is 3 steps (24 samples) into epoch 1.
    resumed: list[int] = []
    _trainer(str(tmp_path / "resumed"), resumed, per_device_train_batch_size=8).train(
        resume_from_checkpoint=str(tmp_path / "stopped" / "checkpoint-8")
    )
    assert resumed[:14] == epoch_one[24:]
