"""What the training loop hands to callbacks, and how it obeys their stop switches."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer


class _Pairs(Dataset):
    def __init__(self, size: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 2, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": self.x[index].sum(dim=0, keepdim=True)}


class _Empty(IterableDataset):
    def __iter__(self) -> Any:
        return iter([])


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.linear(x)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _trainer(tmp_path: Any, callback: TrainerCallback, dataset: Any = None, **overrides: Any):
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_train_epochs=2,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    options.update(overrides)
    return Trainer(
        model=_Net(),
        args=TrainingArguments(**options),
        train_dataset=_Pairs() if dataset is None else dataset,
        eval_dataset=_Pairs(4),
        callbacks=[callback],
    )


class _Recorder(TrainerCallback):
    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.seen.setdefault("epoch_begin", train_dataloader)

    def on_step_end(self, args, state, control, train_dataloader=None, **kwargs):
        self.seen.setdefault("step_end", train_dataloader)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        self.seen.setdefault("prediction_step", eval_dataloader)

    def on_evaluate(self, args, state, control, eval_dataloader=None, **kwargs):
        self.seen.setdefault("evaluate", eval_dataloader)


def test_callbacks_receive_the_train_and_eval_dataloaders(tmp_path) -> None:
    recorder = _Recorder()
    trainer = _trainer(tmp_path, recorder, max_steps=2, eval_strategy="steps", eval_steps=2)
    trainer.train()
    seen = recorder.seen
    assert seen["epoch_begin"] is not None and seen["epoch_begin"] is seen["step_end"]
    assert len(seen["epoch_begin"].dataset) == 8
    assert seen["prediction_step"] is not None and seen["prediction_step"] is seen["evaluate"]
    assert len(seen["evaluate"].dataset) == 4


class _StopInWindow(TrainerCallback):
    """Sets a stop switch after the first micro-batch of the run, once."""

    def __init__(self, switch: str) -> None:
        self.switch = switch
        self.grads_at_epoch_end: list[bool] = []
        self.fired = False

    def on_substep_end(self, args, state, control, **kwargs):
        if not self.fired:
            self.fired = True
            setattr(control, self.switch, True)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.grads_at_epoch_end.append(
            all(p.grad is None or not p.grad.any() for p in model.parameters())
        )


def test_a_stop_in_on_substep_end_skips_the_optimizer_step(tmp_path) -> None:
    trainer = _trainer(
        tmp_path, _StopInWindow("should_training_stop"), gradient_accumulation_steps=2
    )
    before = [p.detach().clone() for p in trainer.model.parameters()]
    output = trainer.train()
    assert output.global_step == 0
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_an_epoch_stop_in_on_substep_end_drops_the_window_and_its_gradients(tmp_path) -> None:
    callback = _StopInWindow("should_epoch_stop")
    trainer = _trainer(tmp_path, callback, gradient_accumulation_steps=2)
    output = trainer.train()
    assert output.global_step == 2  # epoch 0 stopped before its first step; epoch 1 ran both
    assert callback.grads_at_epoch_end[0]  # nothing left to leak into epoch 1's first step


class _Nothing(TrainerCallback):
    pass


def test_a_stream_that_yields_nothing_stops_training(tmp_path) -> None:
    trainer = _trainer(tmp_path, _Nothing(), dataset=_Empty(), max_steps=3)
    assert trainer.train().global_step == 0  # instead of looping over empty epochs
