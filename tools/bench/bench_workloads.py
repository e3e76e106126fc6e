"""The workloads the benchmarks share: a tiny MLP classifier and its random data."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

FEATURES, HIDDEN, CLASSES = 64, 128, 10


class RandomClassification(Dataset):
    """Fixed random inputs and labels, as dict examples like a tokenised dataset."""

    def __init__(self, size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, FEATURES, generator=generator)
        self.y = torch.randint(0, CLASSES, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.y[index]}


class TinyMLP(nn.Module):
    """64 -> 128 -> 10 with a cross-entropy loss when labels are given."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        return out
