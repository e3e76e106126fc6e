"""Subclasses overriding ``_maybe_log_save_evaluate`` are called as the reference calls them.

Research code copies the reference body into an override to log values of its own. Each
signature family (v4.34, v4.4x with ``grad_norm``, transformers 5 with ``start_time`` and
``learning_rate``) runs here on our Trainer and on transformers' (installed for tests),
and the logs, checkpoints and final ``train_loss`` must agree. ``calls`` counts how often
the override ran: the reference calls it after every optimizer step and at epoch end.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import Trainer
from trainer_loop._loss_tracker import LossTracker

transformers = pytest.importorskip("transformers")

_TIMING = ("runtime", "per_second", "total_flos")


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        logits = self.linear(x).squeeze(-1)
        return {"loss": ((logits - labels) ** 2).mean(), "logits": logits}


def _data(rows: int = 12) -> list[dict[str, torch.Tensor]]:
    xs = torch.randn(rows, 4, generator=torch.Generator().manual_seed(1))
    return [{"x": x, "labels": x.sum()} for x in xs]


def _log_body(self: Any, tr_loss: Any, grad_norm: Any, learning_rate: Any, gather: Any) -> None:
    """The logging part the reference bodies share, plus a value of the subclass's own."""
    self.calls = getattr(self, "calls", 0) + 1
    if not (self.control.should_log and self.state.global_step > self._globalstep_last_logged):
        return
    tr_loss_scalar = gather(tr_loss).mean().item()
    tr_loss -= tr_loss
    steps = self.state.global_step - self._globalstep_last_logged
    logs = {"loss": round(tr_loss_scalar / steps, 4)}
    if grad_norm is not None:
        logs["grad_norm"] = grad_norm.item() if isinstance(grad_norm, torch.Tensor) else grad_norm
    logs["learning_rate"] = self._get_learning_rate() if learning_rate is None else learning_rate
    logs["calls"] = self.calls
    self._total_loss_scalar += tr_loss_scalar
    self._globalstep_last_logged = self.state.global_step
    self.store_flos()
    self.log(logs)


def _v434(self: Any, tr_loss: Any, model: Any, trial: Any, epoch: Any, ignore_keys_for_eval: Any):
    _log_body(self, tr_loss, None, None, self._nested_gather)
    metrics = None
    if self.control.should_evaluate:
        metrics = self.evaluate(ignore_keys=ignore_keys_for_eval)
        self._report_to_hp_search(trial, self.state.global_step, metrics)
    if self.control.should_save:
        self._save_checkpoint(model, trial, metrics=metrics)
        self.control = self.callback_handler.on_save(self.args, self.state, self.control)


def _v44x(
    self: Any,
    tr_loss: Any,
    grad_norm: Any,
    model: Any,
    trial: Any,
    epoch: Any,
    ignore_keys_for_eval: Any,
    start_time: Any = None,
) -> None:
    _log_body(self, tr_loss, grad_norm, None, self._nested_gather)
    metrics = None
    if self.control.should_evaluate:
        metrics = self._evaluate(trial, ignore_keys_for_eval)
    if self.control.should_save:
        self._save_checkpoint(model, trial, metrics=metrics)
        self.control = self.callback_handler.on_save(self.args, self.state, self.control)


def _v5(
    self: Any,
    tr_loss: Any,
    grad_norm: Any,
    model: Any,
    trial: Any,
    epoch: Any,
    ignore_keys_for_eval: Any,
    start_time: Any,
    learning_rate: Any = None,
) -> None:
    _log_body(self, tr_loss, grad_norm, learning_rate, self.accelerator.gather)
    metrics = None
    if self.control.should_evaluate:
        metrics = self._evaluate(trial, ignore_keys_for_eval)
        self._determine_best_metric(metrics=metrics, trial=trial)
    if self.control.should_save:
        self._save_checkpoint(model, trial)
        self.control = self.callback_handler.on_save(self.args, self.state, self.control)


def _calls_super(
    self: Any,
    tr_loss: Any,
    grad_norm: Any,
    model: Any,
    trial: Any,
    epoch: Any,
    ignore_keys_for_eval: Any,
    start_time: Any,
    learning_rate: Any = None,
) -> None:
    """Skips evaluations after step 3 (a custom schedule), then does the default."""
    self.calls = getattr(self, "calls", 0) + 1
    if self.state.global_step > 3:
        self.control.should_evaluate = False
    super(type(self), self)._maybe_log_save_evaluate(
        tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time, learning_rate
    )


def _as_on_its_release(method: Any) -> Any:
    """A v4.x body as transformers 5 can call it: with the arguments its release passed."""
    names = [name for name in inspect.signature(method).parameters if name != "self"]

    def adapted(
        self: Any,
        tr_loss: Any,
        grad_norm: Any,
        model: Any,
        trial: Any,
        epoch: Any,
        ignore_keys_for_eval: Any,
        start_time: Any,
        learning_rate: Any = None,
    ) -> None:
        values = locals()
        method(self, **{name: values[name] for name in names})

    return adapted


class _ReferenceShims:
    """What v4.x bodies call on transformers 5, which dropped or changed them."""

    def _nested_gather(self, tensors: Any, name: Any = None) -> Any:
        return tensors  # one process

    def _save_checkpoint(self, model: Any, trial: Any, metrics: Any = None) -> None:
        super()._save_checkpoint(model, trial)  # type: ignore[misc]  # the reference's


def _train(ours: bool, out: Path, method: Any, **overrides: Any) -> tuple[Any, list[dict], list]:
    options: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "num_train_epochs": 2,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 3,
        "save_strategy": "steps",
        "save_steps": 3,
        "learning_rate": 0.1,
        "optim": "sgd",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
    }
    options.update(overrides)
    if ours:
        base: tuple[type, ...] = (Trainer,)
        args: Any = TrainingArguments(**options)
    else:
        base = (_ReferenceShims, transformers.Trainer)
        args = transformers.TrainingArguments(**options)
        method = _as_on_its_release(method) if method in (_v434, _v44x) else method
    body = {} if method is None else {"_maybe_log_save_evaluate": method}
    trainer = type("Custom", base, body)(
        model=_Regressor(), args=args, train_dataset=_data(), eval_dataset=_data(4)
    )
    result = trainer.train()
    history = [
        {k: v for k, v in entry.items() if not any(part in k for part in _TIMING)}
        for entry in trainer.state.log_history
    ]
    return result, history, sorted(os.listdir(out))


def _assert_same_history(history: list[dict], expected: list[dict]) -> None:
    assert [sorted(entry) for entry in history] == [sorted(entry) for entry in expected]
    for entry, wanted in zip(history, expected, strict=True):
        # The reference logs the loss unrounded since v4.4x; we round it to 4 digits.
        assert entry == pytest.approx(wanted, rel=1e-5, abs=1e-4)


def _assert_same_as_reference(tmp_path: Path, method: Any, **overrides: Any) -> list[dict]:
    ref_result, ref_history, ref_dirs = _train(False, tmp_path / "ref", method, **overrides)
    result, history, dirs = _train(True, tmp_path / "ours", method, **overrides)
    _assert_same_history(history, ref_history)
    assert dirs == ref_dirs
    assert result.training_loss == pytest.approx(ref_result.training_loss, rel=1e-6)
    return history


@pytest.mark.parametrize("method", [_v434, _v44x, _v5], ids=["v4.34", "v4.4x", "v5"])
def test_override_is_called_with_its_signature(tmp_path: Path, method: Any) -> None:
    history = _assert_same_as_reference(tmp_path, method)
    logged = [entry for entry in history if "loss" in entry]
    # Called at every optimizer step and at each epoch end, as the reference does.
    assert [entry["calls"] for entry in logged] == [2, 5, 7]
    assert all(("grad_norm" in entry) == (method is not _v434) for entry in logged)


def test_override_calling_super_gets_the_default(tmp_path: Path) -> None:
    history = _assert_same_as_reference(tmp_path, _calls_super)
    assert [entry["step"] for entry in history if "eval_loss" in entry] == [3]
    assert [entry["step"] for entry in history if "loss" in entry] == [2, 4, 6]


def test_v434_super_call_logs_as_without_override(tmp_path: Path) -> None:
    steps_seen: list[int] = []

    def override(self, tr_loss, model, trial, epoch, ignore_keys_for_eval):  # type: ignore[no-untyped-def]  # v4.34 copy
        steps_seen.append(self.state.global_step)
        super(type(self), self)._maybe_log_save_evaluate(
            tr_loss, None, model, trial, epoch, ignore_keys_for_eval
        )

    _, plain, plain_dirs = _train(True, tmp_path / "plain", None)
    _, history, dirs = _train(True, tmp_path / "super", override)
    assert steps_seen == [1, 2, 3, 3, 4, 5, 6, 6]  # each step, and each epoch's end
    _assert_same_history(history, plain)
    assert dirs == plain_dirs


def test_train_loss_counts_each_loss_once_after_resets(tmp_path: Path) -> None:
    # 6 steps, logs at 4: the last two steps' losses are still in tr_loss at the end.
    history = _assert_same_as_reference(tmp_path, _v5, logging_steps=4, eval_strategy="no")
    _, plain, _ = _train(True, tmp_path / "plain", None, logging_steps=4, eval_strategy="no")
    assert [entry["calls"] for entry in history if "loss" in entry] == [5]
    assert history[-1]["train_loss"] == pytest.approx(plain[-1]["train_loss"], rel=1e-6)


def test_v434_metrics_passed_to_save_checkpoint_track_the_best(tmp_path: Path) -> None:
    trainer_args = {"metric_for_best_model": "loss", "load_best_model_at_end": True}
    _, history, _ = _train(True, tmp_path, _v434, **trainer_args)
    evals = [entry for entry in history if "eval_loss" in entry]
    best = min(evals, key=lambda entry: entry["eval_loss"])
    assert [entry["calls"] for entry in history if "loss" in entry] == [2, 5, 7]
    state = transformers.TrainerState.load_from_json(
        str(tmp_path / "checkpoint-6" / "trainer_state.json")
    )
    assert state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")


def test_tracker_running_sum_reset_in_place_is_not_counted_again() -> None:
    tracker = LossTracker(filter_nan_inf=False)
    for value in (1.0, 2.0):
        tracker.add_micro_step(torch.tensor(value))
        tracker.end_optimizer_step()
    running = tracker.running_sum("cpu")
    assert float(running) == 3.0
    tracker.total += float(running)  # what the override does with _total_loss_scalar
    running -= running
    tracker.add_micro_step(torch.tensor(4.0))
    tracker.end_optimizer_step()
    assert float(tracker.running_sum("cpu")) == 4.0
    tracker.flush()
    assert tracker.total == 7.0
