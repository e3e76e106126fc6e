"""The helpers user loops import from ``trainer.trainer_pt_utils`` / ``trainer.trainer_utils``.

Their behaviour is tested where they live (trainer-loop, trainer-core); here we pin what a
script rewritten from ``transformers`` gets at each reference path: every listed name
resolves to the owning package's object, and the few names that differ from it (an
alias, a renamed decorator, v4's and v5's ``metrics_format`` call) work as the
reference's do.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import trainer_core
import trainer_loop
from trainer import TrainerState
from trainer import trainer_pt_utils as pt
from trainer import trainer_utils as tu

_RENAMED = {"find_executable_batch_size", "EvaluationStrategy"}


@pytest.mark.parametrize("module", [pt, tu], ids=["trainer_pt_utils", "trainer_utils"])
def test_every_listed_name_is_the_owning_packages_object(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        if name in _RENAMED:
            continue
        value = getattr(module, name)
        owners = [
            package
            for package in (trainer_loop, trainer_core)
            if getattr(package, name, None) is value
        ]
        if name in ("denumpify_detensorize", "number_of_arguments"):
            assert owners == [trainer_core], name
        elif hasattr(trainer_loop, name):
            assert owners, name


def test_find_executable_batch_size_is_the_references_decorator() -> None:
    calls: list[int] = []

    @tu.find_executable_batch_size(starting_batch_size=8, auto_find_batch_size=True)
    def run(batch_size: int) -> int:
        calls.append(batch_size)
        if batch_size > 2:
            raise RuntimeError("CUDA out of memory.")
        return batch_size

    assert run() == 2
    assert calls == [8, 7, 6, 5, 4, 3, 2]  # 90% of the batch after each out-of-memory


def test_evaluation_strategy_is_v4s_name_of_interval_strategy() -> None:
    assert tu.EvaluationStrategy is tu.IntervalStrategy
    assert tu.EvaluationStrategy("steps") == "steps"


def test_metrics_format_takes_v4s_and_v5s_calls(tmp_path: Path) -> None:
    trainer = SimpleNamespace(
        args=SimpleNamespace(output_dir=str(tmp_path)),
        state=TrainerState(global_step=3),
        is_world_process_zero=lambda: True,
    )
    assert pt.metrics_format(trainer, {"eval_runtime": 61.5}) == {"eval_runtime": "0:01:01.50"}
    assert pt.metrics_format({"x_mem_gpu": 3 << 20}) == {"x_mem_gpu": "3MB"}
