"""Shared fixtures for cross-package tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def tmp_output(tmp_path) -> str:
    return str(tmp_path / "output")


@pytest.fixture
def trackers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """wandb offline (``WANDB_DIR`` is ``tmp_path / "wandb"``) and an MLflow file store
    (``tmp_path / "mlruns"``), for the tests that report to both."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": tmp_path / "wandb",
        "WANDB_DATA_DIR": tmp_path / "wandb-data",
        "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
        "WANDB_CONFIG_DIR": tmp_path / "wandb-config",
        "WANDB_PROJECT": "trainer-integration",
        "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri(),
        # MLflow 3 refuses its file store (in maintenance) unless this opts in; it is the
        # store that runs here without a server or a database driver.
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }.items():
        monkeypatch.setenv(name, str(value))
    for name in (
        "WANDB_LOG_MODEL",
        "WANDB_WATCH",
        "WANDB_DISABLED",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_RUN_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "wandb").mkdir()
    import mlflow
    import wandb
    from mlflow.tracking import fluent

    # Both libraries remember settings for the whole process; start each test afresh.
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    wandb.teardown()
    yield tmp_path
    wandb.finish()
    wandb.teardown()
    while mlflow.active_run() is not None:
        mlflow.end_run()
