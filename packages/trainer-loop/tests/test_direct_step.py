"""The loop's shortcut through training_step: taken only when nothing is customised, and
indistinguishable in its results from the full path."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_loop._direct_step import build_direct_step, gradient_resetter


class _Line(Dataset):
    def __init__(self, size: int = 48) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 3, generator=generator)
        self.y = self.x.sum(dim=1) + 0.1 * torch.randn(size, generator=generator)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.y[index]}


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.dropout = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        prediction = self.linear(self.dropout(x))[:, 0]
        out: dict[str, Any] = {"logits": prediction}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(prediction, labels)
        return out


class _FullPathTrainer(Trainer):
    """Overrides training_step without changing it: forces the full path."""

    calls = 0

    def training_step(self, model, inputs, num_items_in_batch=None):  # type: ignore[override]
        type(self).calls += 1
        return super().training_step(model, inputs, num_items_in_batch)


def _train(trainer_cls: type[Trainer], tmp_path, **overrides: Any) -> tuple[Trainer, list[Any]]:
    torch.manual_seed(0)
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=2,
        learning_rate=0.05,
        logging_steps=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=3,
    )
    options.update(overrides)
    trainer = trainer_cls(
        model=_Regressor(), args=TrainingArguments(**options), train_dataset=_Line()
    )
    trainer.train()
    return trainer, [p.detach().clone() for p in trainer.model.parameters()]


def test_direct_and_full_paths_train_to_identical_weights_and_logs(tmp_path) -> None:
    direct, direct_weights = _train(Trainer, tmp_path / "direct")
    full, full_weights = _train(_FullPathTrainer, tmp_path / "full")
    assert _FullPathTrainer.calls == 12  # 48 examples / 8 x 2 epochs: the override ran
    for a, b in zip(direct_weights, full_weights, strict=True):
        assert torch.equal(a, b)
    losses = [[e["loss"] for e in t.state.log_history if "loss" in e] for t in (direct, full)]
    assert losses[0] == losses[1] and len(losses[0]) == 6


def _trainer(tmp_path, **overrides: Any) -> Trainer:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path), report_to="none", disable_tqdm=True, use_cpu=True
    )
    options.update(overrides)
    return Trainer(model=_Regressor(), args=TrainingArguments(**options), train_dataset=_Line())


def test_the_shortcut_is_built_for_a_plain_trainer(tmp_path) -> None:
    trainer = _trainer(tmp_path)
    step = build_direct_step(trainer, trainer.model)
    assert step is not None
    batch = {"x": torch.randn(4, 3), "labels": torch.randn(4)}
    loss = step(batch)
    assert loss.requires_grad is False and loss.dim() == 0
    assert all(p.grad is not None for p in trainer.model.parameters())


@pytest.mark.parametrize(
    "customise",
    [
        lambda t: setattr(t, "compute_loss", lambda model, inputs, **kw: model(**inputs)["loss"]),
        lambda t: setattr(t, "label_smoother", object()),
        lambda t: setattr(t, "compute_loss_func", lambda outputs, labels, **kw: outputs),
        lambda t: setattr(t, "_data_parallel", True),
    ],
    ids=["instance-override", "label-smoothing", "compute_loss_func", "data-parallel"],
)
def test_any_customisation_keeps_the_full_path(tmp_path, customise) -> None:
    trainer = _trainer(tmp_path)
    customise(trainer)
    assert build_direct_step(trainer, trainer.model) is None


def test_past_index_keeps_the_full_path(tmp_path) -> None:
    trainer = _trainer(tmp_path, past_index=0)
    assert build_direct_step(trainer, trainer.model) is None


def test_subclass_overriding_compute_loss_keeps_the_full_path(tmp_path) -> None:
    class Weighted(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch) * 2

    trainer = Weighted(
        model=_Regressor(),
        args=TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True),
        train_dataset=_Line(),
    )
    assert build_direct_step(trainer, trainer.model) is None


def test_gradient_resetter_drops_every_gradient() -> None:
    model = _Regressor()
    parameters = list(model.parameters())
    model(torch.randn(2, 3), torch.randn(2))["loss"].backward()
    gradient_resetter(model, parameters)()
    assert all(p.grad is None for p in model.parameters())


def test_gradient_resetter_keeps_a_module_own_zero_grad() -> None:
    class Engine(_Regressor):
        resets = 0

        def zero_grad(self, set_to_none: bool = True) -> None:
            type(self).resets += 1
            super().zero_grad(set_to_none)

    model = Engine()
    gradient_resetter(model, list(model.parameters()))()
    assert Engine.resets == 1
