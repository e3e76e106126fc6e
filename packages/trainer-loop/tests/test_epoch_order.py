"""Every epoch shuffles the training data as the reference does (seed + epoch)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from accelerate.data_loader import SeedableRandomSampler
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import LengthGroupedSampler, SeekableRandomSampler, Trainer
from trainer_loop._samplers import seeded_generator

transformers = pytest.importorskip("transformers")


class _Recording(Dataset):
    """Eight regression examples that note which index each read asked for."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(8, 2, generator=generator)
        self.seen: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.seen.append(int(index))
        return {"x": self.x[index], "labels": self.x[index].sum(dim=0, keepdim=True)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _epoch_orders(trainer_cls: Any, args_cls: Any, tmp_path: Any, **overrides: Any) -> list:
    dataset = _Recording()
    args = args_cls(
        output_dir=str(tmp_path),
        num_train_epochs=3,
        per_device_train_batch_size=4,
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        **overrides,
    )
    trainer_cls(model=_Net(), args=args, train_dataset=dataset).train()
    return [dataset.seen[start : start + 8] for start in range(0, 24, 8)]


@pytest.mark.parametrize("overrides", [{}, {"data_seed": 5}], ids=["seed", "data_seed"])
def test_three_epochs_see_the_examples_in_the_references_order(tmp_path, overrides) -> None:
    ours = _epoch_orders(Trainer, TrainingArguments, tmp_path / "ours", **overrides)
    reference = _epoch_orders(
        transformers.Trainer, transformers.TrainingArguments, tmp_path / "ref", **overrides
    )
    assert ours == reference
    assert ours[0] != ours[1] != ours[2]


def test_the_random_sampler_matches_accelerates_seedable_sampler_epoch_by_epoch() -> None:
    ours = SeekableRandomSampler(range(50), generator=seeded_generator(11))
    theirs = SeedableRandomSampler(range(50), data_seed=11)
    for epoch in (0, 1, 2, 7):
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)
    assert list(ours) == list(theirs)  # a finished pass moves both to the next epoch


def test_a_pass_depends_only_on_the_seed_and_the_epoch() -> None:
    lengths = [(i * 37) % 23 + 1 for i in range(40)]
    walked = LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(3))
    passes = [list(walked) for _ in range(3)]
    jumped = LengthGroupedSampler(4, lengths=lengths, generator=seeded_generator(3))
    jumped.set_epoch(2)
    assert list(jumped) == passes[2]
    assert passes[0] != passes[1]
