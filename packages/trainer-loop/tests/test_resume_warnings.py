"""Resuming with other intervals or batch size than the checkpoint's: one warning."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer


class _Data(Dataset):
    def __init__(self, size: int = 16) -> None:
        self.x = torch.linspace(-1, 1, size).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": 3 * self.x[index]}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


def _train(output_dir: str, resume: str | None = None, **overrides: Any) -> Trainer:
    options: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": 4,
        "max_steps": 4,
        "logging_steps": 2,
        "save_steps": 2,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
    }
    args = TrainingArguments(**{**options, **overrides})
    trainer = Trainer(model=_Net(), args=args, train_dataset=_Data())
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_changed_intervals_and_batch_size_are_named_in_one_warning(tmp_path, caplog) -> None:
    _train(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        _train(
            str(tmp_path),
            str(tmp_path / "checkpoint-2"),
            per_device_train_batch_size=2,
            logging_steps=1,
        )
    warnings = [r.getMessage() for r in caplog.records if "differ from those" in r.getMessage()]
    assert len(warnings) == 1
    assert "logging_steps: 1 in this run, 2 in trainer_state.json" in warnings[0]
    assert "per_device_train_batch_size: 2 in this run, 4 in trainer_state.json" in warnings[0]
    assert "save_steps" not in warnings[0] and "eval_steps" not in warnings[0]


def test_resuming_with_the_same_arguments_is_quiet(tmp_path, caplog) -> None:
    _train(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        _train(str(tmp_path), str(tmp_path / "checkpoint-2"))
    assert "differ from those" not in caplog.text


def test_a_model_only_checkpoint_resumes_the_schedule_at_its_step(tmp_path, caplog) -> None:
    """save_only_model keeps no scheduler state: the schedule is moved to the step the
    run resumes at rather than warming up again (the optimizer starts afresh)."""

    def learning_rates(trainer: Trainer) -> list[float]:
        return [entry["learning_rate"] for entry in trainer.state.log_history if "loss" in entry]

    options = {"max_steps": 8, "logging_steps": 1, "warmup_steps": 2}
    uninterrupted = _train(str(tmp_path / "full"), **options)
    _train(str(tmp_path / "model-only"), save_only_model=True, **options)
    with caplog.at_level(logging.WARNING):
        resumed = _train(
            str(tmp_path / "resumed"), str(tmp_path / "model-only" / "checkpoint-4"), **options
        )
    assert learning_rates(resumed)[4:] == pytest.approx(learning_rates(uninterrupted)[4:])
    assert "the learning-rate schedule continues at step 4" in caplog.text
    assert "optimizer.pt is missing" in caplog.text


def test_a_folder_of_save_model_and_save_state_resumes_with_a_fresh_optimizer(
    tmp_path, caplog
) -> None:
    """The end of many scripts: save_model() then save_state() into output_dir. The
    reference resumes from that folder (weights and state; a fresh optimizer), so do we."""
    first = _train(str(tmp_path), max_steps=4, save_strategy="no")
    first.save_model()
    first.save_state()
    with caplog.at_level(logging.WARNING):
        resumed = _train(str(tmp_path), str(tmp_path), max_steps=8, save_strategy="no")
    assert resumed.state.global_step == 8
    assert "optimizer.pt is missing" in caplog.text


def test_a_metric_driven_schedule_resumes_from_before_its_first_evaluation(tmp_path) -> None:
    """GreedyLR has taken no step (last_epoch 0) before the first evaluation: its state is
    restored as saved, not treated as missing and stepped without metrics."""
    options = {
        "max_steps": 8,
        "lr_scheduler_type": "greedy",
        "eval_strategy": "steps",
        "eval_steps": 4,
    }

    def run(output_dir: str, resume: str | None = None) -> Trainer:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=4,
            save_steps=2,
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            **options,
        )
        trainer = Trainer(model=_Net(), args=args, train_dataset=_Data(), eval_dataset=_Data())
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    run(str(tmp_path))
    resumed = run(str(tmp_path / "resumed"), str(tmp_path / "checkpoint-2"))
    assert resumed.state.global_step == 8


def test_a_fresh_run_beside_an_earlier_runs_checkpoints_is_warned_about(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        _train(str(tmp_path))  # the first run: nothing there yet
    assert "already holds checkpoints" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        _train(str(tmp_path))  # a second run from scratch in the same folder
    assert "already holds checkpoints (checkpoint-2, checkpoint-4)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainer_loop"):
        _train(str(tmp_path), save_strategy="no")  # saves nothing: nothing mixes
    assert "already holds checkpoints" not in caplog.text


class _WiderNet(_Net):
    """The same weight names as ``_Net``'s, of other shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 2)


def test_resuming_into_a_model_of_another_shape_names_the_checkpoint_and_the_fix(
    tmp_path,
) -> None:
    _train(str(tmp_path), save_steps=4)
    checkpoint = tmp_path / "checkpoint-4"
    before = {path.name: path.read_bytes() for path in checkpoint.iterdir() if path.is_file()}
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=8, report_to="none", disable_tqdm=True
    )
    trainer = Trainer(model=_WiderNet(), args=args, train_dataset=_Data())
    with pytest.raises(
        ValueError,
        match=r"(?s)checkpoint-4 does not fit .*_WiderNet.*size mismatch.*same class and config",
    ):
        trainer.train(resume_from_checkpoint=str(checkpoint))
    after = {path.name: path.read_bytes() for path in checkpoint.iterdir() if path.is_file()}
    assert after == before


def test_true_given_as_text_on_a_command_line_resumes_from_the_latest(tmp_path) -> None:
    _train(str(tmp_path))
    resumed = _train(str(tmp_path), "True", max_steps=6)
    assert resumed.state.global_step == 6
    assert [e["step"] for e in resumed.state.log_history if "loss" in e] == [2, 4, 6]
