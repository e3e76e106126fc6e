"""The evaluation loop's per-run shortcuts never bypass what a user overrides."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class Lines(Dataset):
    """``y = 2x + 1``: the model below predicts it exactly."""

    def __init__(self, size: int = 6) -> None:
        self.x = torch.arange(size, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i : i + 1], "labels": 2 * self.x[i] + 1}


class Line(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(2.0))
        self.b = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        pred = self.a * x[:, 0] + self.b
        out = {"logits": pred}
        if labels is not None:
            out["loss"] = nn.functional.mse_loss(pred, labels)
        return out


def _args(tmp_path, **overrides) -> TrainingArguments:
    values = dict(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=4,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    values.update(overrides)
    return TrainingArguments(**values)


def test_an_overridden_compute_loss_is_called_for_every_batch(tmp_path) -> None:
    class Constant(Trainer):
        calls = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            Constant.calls += 1
            outputs = model(**inputs)
            loss = torch.tensor(5.0)
            return (loss, outputs) if return_outputs else loss

    metrics = Constant(model=Line(), args=_args(tmp_path)).evaluate(Lines(6))
    assert Constant.calls == 2 and metrics["eval_loss"] == pytest.approx(5.0)


def test_prepare_inputs_and_autocast_overrides_are_used(tmp_path) -> None:
    entered: list[str] = []

    class Custom(Trainer):
        def _prepare_inputs(self, inputs):
            entered.append("prepare")
            return {**inputs, "x": inputs["x"] + 1}  # shifts every prediction by 2

        def autocast_smart_context_manager(self, cache_enabled=True):
            entered.append("autocast")
            return contextlib.nullcontext()

    output = Custom(model=Line(), args=_args(tmp_path)).predict(Lines(4))
    np.testing.assert_allclose(output.predictions, 2 * np.arange(4) + 3)
    assert entered == ["prepare", "autocast"]


def test_a_prediction_step_set_on_the_instance_is_used(tmp_path) -> None:
    trainer = Trainer(model=Line(), args=_args(tmp_path))
    trainer.prediction_step = lambda model, inputs, loss_only, ignore_keys=None: (
        torch.tensor(1.5),
        torch.zeros(inputs["x"].shape[0]),
        inputs["labels"],
    )
    output = trainer.predict(Lines(5))
    assert output.metrics["test_loss"] == pytest.approx(1.5)
    assert output.predictions.tolist() == [0.0] * 5


def test_an_override_calling_super_reuses_the_loops_step(tmp_path) -> None:
    seen: list[object] = []

    class Recording(Trainer):
        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            seen.append(self._active_prediction_step)
            loss, logits, labels = super().prediction_step(
                model, inputs, prediction_loss_only, ignore_keys
            )
            return loss, logits * 10, labels

    trainer = Recording(model=Line(), args=_args(tmp_path))
    output = trainer.predict(Lines(6))
    np.testing.assert_allclose(output.predictions, 10 * (2 * np.arange(6) + 1))
    assert len(seen) == 2 and seen[0] is seen[1] is not None  # one step for the loop
    assert trainer._active_prediction_step is None  # and none left behind


def test_a_direct_call_outside_the_loop_runs_without_gradients(tmp_path) -> None:
    trainer = Trainer(model=Line(), args=_args(tmp_path))
    batch = {"x": torch.ones(2, 1), "labels": torch.tensor([3.0, 3.0])}
    loss, logits, labels = trainer.prediction_step(trainer.model, batch, False)
    assert loss.item() == pytest.approx(0.0) and not loss.requires_grad
    assert not logits.requires_grad and labels is batch["labels"]
    assert trainer.prediction_step(trainer.model, batch, True)[1:] == (None, None)


def test_outputs_are_gathered_as_tensors_or_as_lists_of_objects() -> None:
    """On several processes a prediction_step override's lists of strings (one per
    sample) go through the runtime's object gather, tensors through its tensor gather."""
    from trainer_loop._evaluation_loop import _gather_nested

    class TwoProcesses:
        def gather(self, tensor):
            return torch.cat([tensor, tensor + 100])

        def gather_objects(self, items):
            return [*items, *(f"{item}'" for item in items)]

    outputs = ({"texts": ["a", "b"], "ids": torch.tensor([1, 2])}, [torch.tensor([3])], None)
    gathered = _gather_nested(outputs, TwoProcesses())
    assert gathered[0]["texts"] == ["a", "b", "a'", "b'"]
    assert gathered[0]["ids"].tolist() == [1, 2, 101, 102]
    assert gathered[1][0].tolist() == [3, 103] and gathered[2] is None
