"""``grad_norm`` is logged at every logging step, whether or not gradients are clipped.

transformers 5 measures the gradient norm even with ``max_grad_norm=0`` (clipping off)
and logs it; a run with clipping off must still step with the unclipped gradients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        logits = self.linear(x).squeeze(-1)
        return {"loss": ((logits - labels) ** 2).mean(), "logits": logits}


def _data() -> list[dict[str, torch.Tensor]]:
    xs = torch.randn(8, 4, generator=torch.Generator().manual_seed(1)) * 10
    return [{"x": x, "labels": x.sum()} for x in xs]


def _expected_norm_and_weights(lr: float) -> tuple[float, torch.Tensor]:
    """One plain SGD step on the whole batch, never clipped."""
    model = _Regressor()
    batch = _data()
    xs = torch.stack([row["x"] for row in batch])
    labels = torch.stack([row["labels"] for row in batch])
    model(xs, labels)["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
    with torch.no_grad():
        weights = torch.cat([(p - lr * p.grad).flatten() for p in model.parameters()])
    return norm, weights


@pytest.mark.parametrize("max_grad_norm", [0.0, -1.0, None])
def test_grad_norm_is_logged_without_clipping(tmp_path: Path, max_grad_norm: Any) -> None:
    lr = 1e-3
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=1,
        logging_steps=1,
        optim="sgd",
        learning_rate=lr,
        lr_scheduler_type="constant",
        max_grad_norm=max_grad_norm,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(model=_Regressor(), args=args, train_dataset=_data())
    trainer.train()
    norm, weights = _expected_norm_and_weights(lr)
    logged = trainer.state.log_history[0]
    assert logged["grad_norm"] == pytest.approx(norm, rel=1e-5)
    assert norm > 1.0  # clipping to 1.0 would have changed the step
    trained = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.testing.assert_close(trained, weights)
