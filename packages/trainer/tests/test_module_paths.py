"""Modules named after the reference's module paths hold the same objects as the root.

``from transformers.trainer_utils import get_last_checkpoint`` must become
``from trainer.trainer_utils import get_last_checkpoint`` and nothing else: each module
here re-exports names, it never defines a second version of one.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import trainer

SUBMODULES = sorted(trainer._SUBMODULES)


@pytest.mark.parametrize("path", SUBMODULES)
def test_every_name_resolves_and_is_the_root_object(path: str) -> None:
    module = importlib.import_module(f"trainer.{path}")
    assert module.__all__, path
    for name in module.__all__:
        value = getattr(module, name)
        if name in trainer.__all__:
            assert value is getattr(trainer, name), f"trainer.{path}.{name}"


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_submodules_are_attributes_of_the_package() -> None:
    """``trainer.trainer_utils`` works after a bare ``import trainer``, as with transformers."""
    printed = _run(
        f"import trainer; print(' '.join(getattr(trainer, p).__name__ for p in {SUBMODULES!r}))"
    )
    assert printed.split() == [f"trainer.{path}" for path in SUBMODULES]


def test_torch_free_paths_stay_torch_free() -> None:
    imports = "import trainer.training_args, trainer.trainer_callback, trainer.hf_argparser"
    assert _run(f"{imports}, sys; print('torch' in sys.modules)") == "False"


def test_checkpoint_names_are_the_files_a_checkpoint_holds(tmp_path: Path) -> None:
    from trainer.trainer import (
        OPTIMIZER_NAME,
        PREFIX_CHECKPOINT_DIR,
        SCHEDULER_NAME,
        TRAINER_STATE_NAME,
        TRAINING_ARGS_NAME,
        WEIGHTS_NAME,
        Trainer,
    )
    from trainer.training_args import TrainingArguments

    data = [{"input": torch.randn(2), "labels": torch.randn(2)} for _ in range(4)]
    args = TrainingArguments(
        str(tmp_path), max_steps=2, save_steps=2, per_device_train_batch_size=2, use_cpu=True
    )
    Trainer(model=_Regression(), args=args, train_dataset=data).train()
    checkpoint = tmp_path / f"{PREFIX_CHECKPOINT_DIR}-2"
    names = {TRAINER_STATE_NAME, TRAINING_ARGS_NAME, OPTIMIZER_NAME, SCHEDULER_NAME}
    names |= {WEIGHTS_NAME}  # save_safetensors defaults to False, as in the reference
    assert names <= {path.name for path in checkpoint.iterdir()}


class _Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, input: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": torch.nn.functional.mse_loss(self.linear(input), labels)}


def test_availability_checks_agree_with_the_import_system() -> None:
    from trainer import integrations

    assert integrations.is_optuna_available() == (importlib.util.find_spec("optuna") is not None)
    assert integrations.is_wandb_available() == (importlib.util.find_spec("wandb") is not None)
    reporters = integrations.get_available_reporting_integrations()
    assert reporters == trainer.TrainingArguments("out", report_to="all").report_to


def test_reporter_callbacks_by_name_as_the_trainer_adds_them() -> None:
    from trainer import integrations

    assert integrations.get_reporting_integration_callbacks("tensorboard") == [
        integrations.TensorBoardCallback
    ]
    assert integrations.get_reporting_integration_callbacks(["none"]) == []
    with pytest.raises(ValueError, match="'comet_ml' is a reporter of transformers' Trainer"):
        integrations.get_reporting_integration_callbacks(["comet_ml"])  # transformers' only
    with pytest.raises(ValueError, match="Unknown name 'tensorbord'"):
        integrations.get_reporting_integration_callbacks("tensorbord")


def test_a_schedule_from_the_optimization_path_drives_a_trainer(tmp_path: Path) -> None:
    from trainer.optimization import get_linear_schedule_with_warmup

    model = _Regression()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=1, num_training_steps=4)
    data = [{"input": torch.randn(2), "labels": torch.randn(2)} for _ in range(4)]
    args = trainer.TrainingArguments(
        str(tmp_path), max_steps=4, logging_steps=1, per_device_train_batch_size=1, use_cpu=True
    )
    run = trainer.Trainer(
        model=model, args=args, train_dataset=data, optimizers=(optimizer, schedule)
    )
    run.train()
    rates = [entry["learning_rate"] for entry in run.state.log_history if "learning_rate" in entry]
    assert rates == pytest.approx([0.0, 1.0, 2 / 3, 1 / 3])
