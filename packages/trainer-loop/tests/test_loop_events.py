"""What the training loop hands to callbacks, how it obeys their stop switches, and the
loop details scripts written for transformers 5 rely on."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from trainer_args import TrainingArguments
from trainer_core import TrainerCallback
from trainer_loop import Trainer, _training_loop


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


def test_a_stream_that_yields_nothing_is_refused(tmp_path) -> None:
    trainer = _trainer(tmp_path, _Nothing(), dataset=_Empty(), max_steps=3)
    with pytest.raises(ValueError, match="yielded no batch at all"):  # not empty epochs
        trainer.train()


class _OneShot(IterableDataset):
    """A stream that can be read once: its second pass yields nothing."""

    def __init__(self) -> None:
        self.rows = iter([{"x": torch.ones(2), "labels": torch.ones(1)} for _ in range(4)])

    def __iter__(self) -> Any:
        return self.rows


def test_a_stream_that_runs_dry_later_stops_training_with_a_warning(tmp_path, caplog) -> None:
    trainer = _trainer(tmp_path, _Nothing(), dataset=_OneShot(), max_steps=5)
    with caplog.at_level("WARNING"):
        assert trainer.train().global_step == 2  # two batches, then an empty second pass
    assert "yielded no batch in epoch 1: stopping training at step 2 of 5" in caplog.text


# ----------------------------------------------------- details scripts written for
# transformers 5 rely on: eval_on_start, rotation after a resume, the state's eval_steps,
# unrounded losses, torch_empty_cache_steps, restored callback settings.
class _Quiet(TrainerCallback):
    """A callback that does nothing: ``_trainer`` wants one."""


def test_eval_on_start_evaluates_before_the_first_step(tmp_path) -> None:
    trainer = _trainer(
        tmp_path, _Quiet(), max_steps=4, eval_on_start=True, eval_strategy="steps", eval_steps=4
    )
    trainer.train()
    evaluations = [e["step"] for e in trainer.state.log_history if "eval_loss" in e]
    assert evaluations == [0, 4]


def test_eval_on_start_without_an_eval_dataset_is_refused_before_training(tmp_path) -> None:
    trainer = _trainer(tmp_path, _Quiet(), max_steps=4, eval_on_start=True)
    trainer.eval_dataset = None
    with pytest.raises(ValueError, match=r"eval_on_start=True .* no eval_dataset"):
        trainer.train()
    assert trainer.state.global_step == 0


def test_rotation_after_a_resume_does_not_keep_the_checkpoint_resumed_from(tmp_path) -> None:
    limited = dict(save_strategy="steps", save_steps=2, save_total_limit=1)
    _trainer(tmp_path, _Quiet(), max_steps=4, **limited).train()
    assert os.listdir(tmp_path) == ["checkpoint-4"]
    _trainer(tmp_path, _Quiet(), max_steps=8, **limited).train(resume_from_checkpoint=True)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-8"]  # as the reference keeps


def test_the_state_keeps_its_default_eval_steps_when_none_are_set(tmp_path) -> None:
    trainer = _trainer(
        tmp_path, _Quiet(), max_steps=4, logging_steps=3, save_strategy="steps", save_steps=4
    )
    trainer.train()
    with open(os.path.join(tmp_path, "checkpoint-4", "trainer_state.json")) as file:
        saved = json.load(file)
    assert (saved["logging_steps"], saved["eval_steps"]) == (3, 500)


def test_logged_losses_are_not_rounded(tmp_path) -> None:
    trainer = _trainer(tmp_path, _Quiet(), max_steps=4, logging_strategy="steps", logging_steps=1)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert any(loss != round(loss, 4) for loss in losses)


def test_torch_empty_cache_steps_releases_the_device_cache_every_n_steps(
    tmp_path, monkeypatch
) -> None:
    released: list[str] = []
    monkeypatch.setattr(_training_loop, "release_device_cache", lambda d: released.append(d.type))
    _trainer(tmp_path, _Quiet(), max_steps=5, torch_empty_cache_steps=2).train()
    assert released == ["cpu", "cpu"]  # after steps 2 and 4


def test_releasing_the_cache_calls_the_backend_of_the_device(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("cuda"))
    _training_loop.release_device_cache(torch.device("cuda", 0))
    _training_loop.release_device_cache(torch.device("cpu"))
    assert calls == ["cuda"]


def test_restoring_callback_states_rebuilds_them_with_the_stored_settings(tmp_path) -> None:
    from trainer_core import EarlyStoppingCallback, TrainerControl

    def run(patience: int, **more: Any) -> Trainer:
        trainer = _trainer(
            tmp_path,
            _Quiet(),
            max_steps=10,
            learning_rate=0.0,  # the eval loss never improves: each evaluation is a miss
            eval_strategy="steps",
            eval_steps=1,
            save_strategy="steps",
            save_steps=1,
            metric_for_best_model="eval_loss",
            load_best_model_at_end=True,
            **more,
        )
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=patience))
        return trainer

    first = run(2)
    first.train()
    assert first.state.global_step == 3
    resumed = run(5, restore_callback_states_from_checkpoint=True)
    resumed.train(resume_from_checkpoint=os.path.join(tmp_path, "checkpoint-2"))
    (stopper,) = [
        c for c in resumed.callback_handler.callbacks if hasattr(c, "early_stopping_patience")
    ]
    assert stopper.early_stopping_patience == 2  # the checkpoint's, as the reference restores
    assert resumed.state.global_step == 3
    assert isinstance(resumed.control, TrainerControl)


def test_a_batch_size_set_on_the_arguments_before_train_is_used(tmp_path) -> None:
    """The pattern after a search: set the best trial's values on args, then train()."""
    trainer = _trainer(tmp_path, _Quiet(), max_steps=1)
    trainer.args.per_device_train_batch_size = 4
    trainer.train()
    assert trainer.state.train_batch_size == 4


def test_the_state_lists_the_exportable_callbacks_from_construction(tmp_path) -> None:
    trainer = _trainer(tmp_path, _Quiet())
    assert "TrainerControl" in trainer.state.stateful_callbacks  # save_state() writes it
