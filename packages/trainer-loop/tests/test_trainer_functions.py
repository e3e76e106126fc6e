"""The Trainer-method functions of ``trainer_pt_utils``, the model queries, the
reference-shaped ``TrainerMemoryTracker`` and ``find_executable_batch_size``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from trainer_core import TrainerState
from trainer_loop import (
    TrainerMemoryTracker,
    find_executable_batch_size_decorator,
    get_model_param_count,
    get_module_class_from_name,
    log_metrics,
    metrics_format,
    save_metrics,
    save_state,
)


class _Trainer:
    def __init__(self, output_dir: Path, main: bool = True) -> None:
        self.args = SimpleNamespace(output_dir=str(output_dir))
        self.state = TrainerState(global_step=7)
        self.main = main

    def is_world_process_zero(self) -> bool:
        return self.main


def test_metrics_format_takes_both_reference_forms() -> None:
    metrics = {"train_runtime": 3723.456, "eval_mem_cpu_alloc_delta": 5 << 20, "loss": 0.123456}
    expected = {"train_runtime": "1:02:03.45", "eval_mem_cpu_alloc_delta": "5MB", "loss": 0.1235}
    assert metrics_format(metrics) == expected
    assert metrics_format(None, metrics) == expected


def test_log_metrics_prints_an_aligned_table_on_the_main_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_metrics(_Trainer(tmp_path), "train", {"train_runtime": 3.5, "loss": 0.25, "n": 10})
    assert capsys.readouterr().out == (
        "***** train metrics *****\n"
        "  loss          =       0.25\n"
        "  n             =         10\n"
        "  train_runtime = 0:00:03.50\n"
    )
    log_metrics(_Trainer(tmp_path, main=False), "train", {"loss": 1.0})
    assert capsys.readouterr().out == ""


def test_save_metrics_and_save_state_write_the_reference_files(tmp_path: Path) -> None:
    trainer = _Trainer(tmp_path / "out")
    save_metrics(trainer, "eval", {"eval_loss": 0.5})
    save_metrics(trainer, "train", {"train_loss": 0.25}, combined=False)
    assert json.loads((tmp_path / "out" / "eval_results.json").read_text()) == {"eval_loss": 0.5}
    assert json.loads((tmp_path / "out" / "all_results.json").read_text()) == {"eval_loss": 0.5}
    assert (tmp_path / "out" / "train_results.json").exists()
    save_state(trainer)
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 7
    save_state(_Trainer(tmp_path / "other", main=False))
    assert not (tmp_path / "other").exists()


def test_model_queries() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.LayerNorm(3)), nn.Linear(3, 1))
    model[2].weight.requires_grad_(False)
    assert get_model_param_count(model) == 9 + 6 + 4
    assert get_model_param_count(model, trainable_only=True) == 9 + 6 + 1
    model[0].weight.ds_numel = 100  # a ZeRO-3 partitioned parameter reports its full size
    assert get_model_param_count(model) == 100 + 3 + 6 + 4
    assert get_module_class_from_name(model, "LayerNorm") is nn.LayerNorm
    assert get_module_class_from_name(model, "Sequential") is nn.Sequential
    assert get_module_class_from_name(model, "Conv2d") is None


def test_trainer_memory_tracker_takes_the_reference_constructor() -> None:
    skipped = TrainerMemoryTracker(skip_memory_metrics=True)
    metrics: dict[str, float] = {}
    skipped.start()
    skipped.stop_and_update_metrics(metrics)
    assert metrics == {} and skipped.skip_memory_metrics

    tracker = TrainerMemoryTracker()

    def evaluate() -> dict[str, float]:  # the stage is named after the calling method
        tracker.start()
        found: dict[str, float] = {}
        tracker.stop_and_update_metrics(found)
        return found

    found = evaluate()
    assert {"eval_mem_cpu_alloc_delta", "eval_mem_cpu_peaked_delta"} <= set(found)


def test_find_executable_batch_size_decorator_shapes() -> None:
    def train(batch_size: int, scale: int = 1) -> int:
        if batch_size > 5:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return batch_size * scale

    once = find_executable_batch_size_decorator(train, 4)
    assert once.keywords == {"batch_size": 4} and once(scale=2) == 8
    assert find_executable_batch_size_decorator(train, 6, auto_find_batch_size=True)() == 5
    decorate = find_executable_batch_size_decorator(
        starting_batch_size=7, auto_find_batch_size=True
    )
    assert decorate(train)(scale=3) == 15  # 7 -> 6 -> 5


def test_find_executable_batch_size_decorator_gives_up_below_one() -> None:
    def train(batch_size: int) -> int:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    with pytest.raises(RuntimeError, match="batch size of 1"):
        find_executable_batch_size_decorator(train, 2, auto_find_batch_size=True)()
