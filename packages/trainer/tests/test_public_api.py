"""The meta-package exposes the documented API, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import trainer


@pytest.mark.parametrize("name", trainer.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(trainer, name) is not None


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert trainer.__all__ == sorted(trainer._MODULE_OF)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        trainer.NotAThing  # noqa: B018


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}; import sys; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_arguments_and_parser_import_without_torch() -> None:
    modules = _modules_after("from trainer import TrainingArguments, HfArgumentParser")
    assert "torch" not in modules
    assert "trainer_loop" not in modules


def test_trainer_import_loads_the_loop_but_no_optional_integration() -> None:
    modules = _modules_after("from trainer import Trainer, TrainingArguments")
    assert "trainer_loop" in modules
    for optional in (
        "deepspeed",
        "wandb",
        "optuna",
        "ray",
        "tensorboard",
        "mlflow",
        "transformers",
    ):
        assert optional not in modules, optional
