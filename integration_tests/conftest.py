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
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    # MLflow 3 refuses its file store (in maintenance) unless this opts in; it is the
    # store that runs here without a server or a database driver.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    import mlflow
    from mlflow.tracking import fluent

    from trainer_testing.wandb_offline import offline_wandb

    # MLflow remembers its experiment for the whole process; start each test afresh.
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    with offline_wandb(monkeypatch, tmp_path / "wandb", tmp_path, "trainer-integration"):
        yield tmp_path
    while mlflow.active_run() is not None:
        mlflow.end_run()
