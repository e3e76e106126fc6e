"""``past_index``: a model's memories (``mems``) carry from one training step to the next
within an epoch, never from an evaluation or across epochs, and are gone after training
(as in the reference v4.34)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _MemoryModel(nn.Module):
    """Returns ``(loss, logits, mems)``; records the shape of the ``mems`` each call got."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(16, 8)
        self.head = nn.Linear(8, 16)
        self.calls: list[tuple[str, tuple[int, ...] | None]] = []

    def forward(self, input_ids, labels=None, mems=None):
        mode = "train" if self.training else "eval"
        self.calls.append((mode, None if mems is None else tuple(mems.shape)))
        hidden = self.embedding(input_ids)
        if mems is not None and mems.shape == hidden.shape:
            hidden = hidden + mems
        logits = self.head(hidden)
        if labels is None:
            return logits, hidden.detach()
        loss = functional.cross_entropy(logits.reshape(-1, 16), labels.reshape(-1))
        return loss, logits, hidden.detach()


def _rows(count: int) -> list[dict[str, torch.Tensor]]:
    ids = torch.randint(0, 16, (count, 5), generator=torch.Generator().manual_seed(1))
    return [{"input_ids": row, "labels": row} for row in ids]


def _args(tmp_path, **overrides) -> TrainingArguments:
    """Two epochs of two steps, memories at output index 2."""
    options = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_train_epochs=2,
        past_index=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    return TrainingArguments(**{**options, **overrides})


def test_memories_stay_within_an_epoch_and_out_of_evaluation(tmp_path) -> None:
    model = _MemoryModel()
    args = _args(tmp_path, per_device_eval_batch_size=3, eval_strategy="epoch")
    trainer = Trainer(model=model, args=args, train_dataset=_rows(8), eval_dataset=_rows(3))
    trainer.train()
    assert model.calls == [
        ("train", None),  # epoch 1
        ("train", (4, 5, 8)),
        ("eval", None),
        ("train", None),  # epoch 2 starts afresh, not from the evaluation's memories
        ("train", (4, 5, 8)),
        ("eval", None),
    ]
    assert not hasattr(trainer, "_past")


def test_memories_reset_at_each_epoch_without_evaluations(tmp_path) -> None:
    model = _MemoryModel()
    Trainer(model=model, args=_args(tmp_path), train_dataset=_rows(8)).train()
    assert [shape for _, shape in model.calls] == [None, (4, 5, 8), None, (4, 5, 8)]
