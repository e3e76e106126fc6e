"""With ``dataloader_persistent_workers`` the evaluation loader is built once and its
worker processes serve every evaluation; a different dataset still gets its own loader.

The dataset reports the pid of the worker that loaded each example, and the model
records it, so the tests see which processes really did the loading.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class WorkerStamped(Dataset):
    """``y = x``, each example stamped with the pid of the process that loaded it."""

    def __init__(self, size: int = 6) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x = torch.tensor([float(i)])
        return {"x": x, "labels": x, "loader_pid": torch.tensor(os.getpid())}


class PidRecorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.loader_pids: list[set[int]] = []

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, loader_pid: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        self.loader_pids.append({int(p) for p in loader_pid})
        pred = x * self.w
        return {"loss": nn.functional.mse_loss(pred, labels), "logits": pred}


def _trainer(tmp_path, eval_dataset, *, persistent: bool) -> Trainer:
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=3,
        dataloader_num_workers=1,
        dataloader_persistent_workers=persistent,
        report_to="none",
        use_cpu=True,
    )
    return Trainer(model=PidRecorder(), args=args, eval_dataset=eval_dataset)


def _pids_of_one_evaluation(trainer: Trainer, **kwargs) -> set[int]:
    trainer.model.loader_pids.clear()
    trainer.evaluate(**kwargs)
    return set().union(*trainer.model.loader_pids)


def test_persistent_workers_serve_every_evaluation(tmp_path) -> None:
    trainer = _trainer(tmp_path, WorkerStamped(), persistent=True)
    first = _pids_of_one_evaluation(trainer)
    second = _pids_of_one_evaluation(trainer)
    assert len(first) == 1 and os.getpid() not in first
    assert second == first
    assert trainer.get_eval_dataloader() is trainer.get_eval_dataloader()


def test_without_persistent_workers_each_evaluation_starts_its_own(tmp_path) -> None:
    trainer = _trainer(tmp_path, WorkerStamped(), persistent=False)
    first = _pids_of_one_evaluation(trainer)
    second = _pids_of_one_evaluation(trainer)
    assert first.isdisjoint(second)
    assert trainer.get_eval_dataloader() is not trainer.get_eval_dataloader()


def test_a_different_dataset_gets_its_own_loader(tmp_path) -> None:
    trainer = _trainer(tmp_path, WorkerStamped(6), persistent=True)
    kept = trainer.get_eval_dataloader()
    other = WorkerStamped(4)
    assert trainer.get_eval_dataloader(other) is not kept
    assert sum(batch["x"].shape[0] for batch in trainer.get_eval_dataloader(other)) == 4
    assert trainer.get_eval_dataloader() is not kept  # the default dataset again: rebuilt
    trainer.args.per_device_eval_batch_size = 2
    resized = trainer.get_eval_dataloader()
    assert [batch["x"].shape[0] for batch in resized] == [2, 2, 2]


def test_named_datasets_keep_one_loader_each(tmp_path) -> None:
    sets = {"small": WorkerStamped(3), "large": WorkerStamped(6)}
    trainer = _trainer(tmp_path, sets, persistent=True)
    small, large = trainer.get_eval_dataloader("small"), trainer.get_eval_dataloader("large")
    assert small is not large
    assert trainer.get_eval_dataloader("small") is small
    assert trainer.get_eval_dataloader("large") is large
    metrics = trainer.evaluate()
    assert {"eval_small_loss", "eval_large_loss"} <= set(metrics)
