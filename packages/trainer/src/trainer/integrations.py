"""The names of ``transformers.integrations`` we implement, at the same path under ``trainer``.

Scripts pick reporters and search backends by checking what is installed
(``if is_wandb_available(): ...``) and add reporter callbacks by class. The checks here
look for the library without importing it, so asking is cheap.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from trainer_core import REPORT_TO_GROUP, installed_plugins
from trainer_loop import resolve_reporters
from trainer_reporting import MLflowCallback, TensorBoardCallback, WandbCallback, rewrite_logs

__all__ = [
    "MLflowCallback",
    "TensorBoardCallback",
    "WandbCallback",
    "get_available_reporting_integrations",
    "get_reporting_integration_callbacks",
    "is_mlflow_available",
    "is_optuna_available",
    "is_ray_tune_available",
    "is_sigopt_available",
    "is_tensorboard_available",
    "is_wandb_available",
    "rewrite_logs",
]


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken spec
        return False


def is_tensorboard_available() -> bool:
    """Either writer the TensorBoard reporter can use: tensorboard's or tensorboardX."""
    return _found("tensorboard") or _found("tensorboardX")


def is_wandb_available() -> bool:
    return _found("wandb")


def is_mlflow_available() -> bool:
    return _found("mlflow")


def is_optuna_available() -> bool:
    return _found("optuna")


def is_ray_tune_available() -> bool:
    """Whether ray is installed. Looking for ``ray.tune`` itself would import ray."""
    return _found("ray")


def is_sigopt_available() -> bool:
    return _found("sigopt")


def get_available_reporting_integrations() -> list[str]:
    """The names ``report_to="all"`` expands to: reporters whose library is installed."""
    return sorted(installed_plugins(REPORT_TO_GROUP))


def get_reporting_integration_callbacks(report_to: str | list[str] | None) -> list[Any]:
    """The reporter callback classes ``report_to`` names (``"all"``: every installed one;
    ``"none"``: none), as the Trainer adds them. An unknown name raises a ``ValueError``
    that lists the installed ones."""
    return resolve_reporters(report_to)
