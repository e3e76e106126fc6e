"""Schedule-free optimizers: train mode for every training step, eval mode for evaluation.

The stand-in below behaves as ``schedulefree``'s optimizers do where the Trainer is
concerned: it starts in eval mode, has ``train()`` / ``eval()`` methods and refuses to
step outside train mode. The package itself is not needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_loop._optimizer_methods import set_optimizer_mode


class ModalSGD(torch.optim.SGD):
    """SGD with a train/eval switch, recording each change of mode."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, lr=lr)
        self.mode = "eval"
        self.changes: list[str] = []

    def train(self) -> None:
        self._switch("train")

    def eval(self) -> None:
        self._switch("eval")

    def _switch(self, mode: str) -> None:
        if self.mode != mode:
            self.changes.append(mode)
        self.mode = mode

    def step(self, closure: Any = None) -> Any:
        if self.mode != "train":
            raise RuntimeError("Optimizer was not in train mode")
        return super().step(closure)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


def _data(count: int = 8) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{"x": torch.randn(3, generator=generator), "labels": torch.ones(1)}] * count


def _trainer(tmp_path: Path, **extra: Any) -> tuple[Trainer, ModalSGD, list[tuple[bool, str]]]:
    model = _Net()
    optimizer = ModalSGD(model.parameters(), lr=0.1)
    forwards: list[tuple[bool, str]] = []  # (model.training, optimizer.mode) at each forward
    model.register_forward_pre_hook(
        lambda module, _: forwards.append((module.training, optimizer.mode))
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        per_device_eval_batch_size=4,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        **extra,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_data(),
        eval_dataset=_data(4),
        optimizers=(optimizer, None),
    )
    return trainer, optimizer, forwards


def test_training_with_evaluations_switches_modes_as_the_reference(tmp_path: Path) -> None:
    trainer, optimizer, forwards = _trainer(
        tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2
    )
    trainer.train()
    # Steps 1-2 train, evaluation at 2, steps 3-4, evaluation at 4; nothing switches the
    # optimizer when training ends (as in the reference), so it stays in eval mode.
    assert optimizer.changes == ["train", "eval", "train", "eval"]
    assert optimizer.mode == "eval"
    assert {mode for training, mode in forwards if training} == {"train"}
    assert [mode for training, mode in forwards if not training] == ["eval", "eval"]


def test_accumulated_micro_steps_and_prediction_after_training(tmp_path: Path) -> None:
    trainer, optimizer, forwards = _trainer(tmp_path, max_steps=2, gradient_accumulation_steps=2)
    trainer.train()
    assert optimizer.changes == ["train"]
    assert len(forwards) == 4  # every micro-step ran in train mode, or step() would refuse
    trainer.predict(_data(4))
    assert optimizer.changes == ["train", "eval"]
    assert forwards[-1] == (False, "eval")


def test_evaluation_before_training_puts_it_in_eval_mode(tmp_path: Path) -> None:
    trainer, optimizer, forwards = _trainer(tmp_path, max_steps=1)
    optimizer.train()
    trainer.evaluate()
    assert optimizer.changes == ["train", "eval"]
    assert forwards == [(False, "eval")]


def test_set_optimizer_mode_ignores_optimizers_without_modes() -> None:
    plain = torch.optim.SGD(_Net().parameters(), lr=0.1)
    set_optimizer_mode(plain, "eval")  # torch optimizers have no train()/eval()
    set_optimizer_mode(None, "train")  # no optimizer yet
    modal = ModalSGD(_Net().parameters(), lr=0.1)
    set_optimizer_mode(modal, "train")
    assert modal.changes == ["train"]
