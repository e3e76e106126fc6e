"""``accelerator_config={"gradient_accumulation_kwargs": {...}}``: ``num_steps`` sets the
accumulation, and ``sync_each_batch`` stops the loop from skipping the gradient sync on
a window's first micro-batches (the runtime's ``no_sync``), without changing the result."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


def _data() -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{"x": torch.randn(2, generator=generator), "labels": torch.ones(1)} for _ in range(16)]


def _train(tmp_path: Any, accumulation_kwargs: dict[str, Any]) -> tuple[int, int, torch.Tensor]:
    """(accumulation steps, windows entered without sync, final weights)."""
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        accelerator_config={"gradient_accumulation_kwargs": accumulation_kwargs},
    )
    trainer = Trainer(model=_Net(), args=args, train_dataset=_data())
    unsynced = []
    plain_no_sync = trainer.runtime.no_sync

    @contextmanager
    def counting_no_sync(model: Any) -> Any:
        unsynced.append(1)
        with plain_no_sync(model):
            yield

    trainer.runtime.no_sync = counting_no_sync  # type: ignore[method-assign]  # a spy
    trainer.train()
    return args.gradient_accumulation_steps, len(unsynced), trainer.model.linear.weight.detach()


def test_num_steps_accumulates_and_sync_each_batch_syncs_every_micro_batch(tmp_path) -> None:
    steps, unsynced, weights = _train(tmp_path / "a", {"num_steps": 2})
    assert (steps, unsynced) == (2, 4)  # 4 windows of 2: the first micro-batch skips sync
    steps, synced_unsynced, synced_weights = _train(
        tmp_path / "b", {"num_steps": 2, "sync_each_batch": True}
    )
    assert (steps, synced_unsynced) == (2, 0)
    assert torch.equal(weights, synced_weights)
