"""Tiny torch models and datasets for tests (needs the ``torch`` extra).

They return what the Trainer expects of a model (a dict with "loss" when labels are
given, and "logits"), train in milliseconds on a CPU and have answers a test can know.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


class RegressionDataset(Dataset):
    """``labels = 2 * input_x + 3`` plus a little noise, as dict examples."""

    def __init__(self, size: int = 64, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(size, 1, generator=generator)
        self.y = 2.0 * self.x[:, 0] + 3.0 + 0.1 * torch.randn(size, generator=generator)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_x": self.x[index], "labels": self.y[index]}


class RegressionModel(nn.Module):
    """``a * x + b`` with an MSE loss; ``dropout`` exercises the random state."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, input_x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        prediction = self.linear(self.dropout(input_x))[:, 0]
        out = {"logits": prediction}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(prediction, labels)
        return out


class PaddedTokenDataset(Dataset):
    """Rows of ``length`` token ids whose first ``real`` are tokens and the rest padding
    (id 0, mask 0): a token count knows its answer ("all": ``length`` a row,
    "non_padding": ``real``)."""

    def __init__(self, rows: int, length: int = 6, real: int = 4) -> None:
        self.rows, self.length, self.real = rows, length, real

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        mask = (torch.arange(self.length) < self.real).long()
        ids = (torch.arange(self.length) + 1 + index % 3) * mask
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(1.0)}


class TokenEmbeddingModel(nn.Module):
    """A one-number embedding averaged over the tokens: a model with ``input_ids`` as its
    main input, for token-counting tests (seeded, so every process starts alike)."""

    main_input_name = "input_ids"

    def __init__(self, vocab_size: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.Embedding(vocab_size, 1)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        out = self.embedding(input_ids).mean(dim=(1, 2))
        return {"loss": nn.functional.mse_loss(out, labels)}


class VectorRegressionModel(nn.Module):
    """``x @ w + b`` over ``features`` inputs with a mean-squared loss: a plain module
    whose ``forward`` names its inputs and takes no ``**kwargs`` (seeded, so two built
    alike hold the same weights and their training runs can be compared)."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        logits = self.linear(x).squeeze(-1)
        loss = None if labels is None else ((logits - labels) ** 2).mean()
        return {"loss": loss, "logits": logits}
