"""A tiny model and dataset for the checkpoint, resume and fault tests.

The model has dropout and the data is shuffled, so a resumed run matches an
uninterrupted one only if the RNG states and the data position are both restored.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from trainer import TrainingArguments


class CountingDataset(Dataset):
    """40 regression examples; remembers which items were read, in order."""

    def __init__(self, size: int = 40) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(size, 4, generator=generator)
        self.y = self.x.sum(1, keepdim=True)
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.reads.append(index)
        return {"x": self.x[index], "labels": self.y[index]}


class DropoutRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 16)
        self.drop = nn.Dropout(0.3)
        self.b = nn.Linear(16, 1)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        out = self.b(self.drop(torch.relu(self.a(x))))
        loss = ((out - labels) ** 2).mean() if labels is not None else None
        return {"loss": loss, "logits": out}


def make_model(seed: int = 0) -> DropoutRegressor:
    torch.manual_seed(seed)
    return DropoutRegressor()


def make_args(output_dir: str, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=output_dir,
        per_device_train_batch_size=4,
        num_train_epochs=3,
        save_steps=2,
        learning_rate=0.05,
        logging_steps=5,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=3,
    )
    defaults.update(overrides)
    return TrainingArguments(**defaults)


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def same_weights(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
