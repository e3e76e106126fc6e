"""report_to through a real Trainer run: TensorBoard, MLflow and wandb, each read back.

TensorBoard event files are read with TensorBoard's own reader, the MLflow file store
with MlflowClient, and wandb (offline mode, nothing leaves the machine) from the run
file it writes.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from trainer import Trainer, TrainingArguments
from trainer_core import REPORT_TO_GROUP, UnknownPluginError, installed_plugins
from trainer_testing.models import RegressionDataset, RegressionModel
from trainer_testing.wandb_offline import offline_runs

REPO = Path(__file__).resolve().parents[1]


def _args(tmp_path: Path, report_to: Any) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path / "out"),
        logging_dir=str(tmp_path / "tb"),
        run_name="integration",
        per_device_train_batch_size=8,
        num_train_epochs=1,  # 64 samples / 8 = 8 steps
        learning_rate=0.1,
        logging_steps=4,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="no",
        report_to=report_to,
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )


def _trainer(args: TrainingArguments) -> Trainer:
    return Trainer(
        model=RegressionModel(),
        args=args,
        train_dataset=RegressionDataset(64),
        eval_dataset=RegressionDataset(16, seed=1),
    )


def _tensorboard_steps(log_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def _mlflow_steps(tracking_uri: str, run_id: str, key: str) -> list[int]:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri).get_metric_history(run_id, key)
    return sorted(metric.step for metric in history)  # async batches land in either order


@pytest.mark.slow
def test_one_run_reported_to_tensorboard_mlflow_and_wandb(
    trackers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_WATCH", "parameters")
    trainer = _trainer(_args(trackers, ["tensorboard", "mlflow", "wandb"]))
    trainer.train()
    assert trainer.model._forward_hooks  # wandb.watch hooks the model to record parameters
    trainer.evaluate()  # after train(): still logged at the last step
    import mlflow
    import wandb
    from mlflow import MlflowClient

    wandb.finish()
    mlflow.flush_async_logging()

    assert _tensorboard_steps(trackers / "tb", "train/loss") == [4, 8]
    assert _tensorboard_steps(trackers / "tb", "eval/loss") == [4, 8, 8]
    assert _tensorboard_steps(trackers / "tb", "train/train_runtime") == [8]

    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert (run.info.run_name, run.info.status) == ("integration", "FINISHED")
    assert run.data.params["learning_rate"] == "0.1"
    assert _mlflow_steps(uri, run.info.run_id, "loss") == [4, 8]
    assert _mlflow_steps(uri, run.info.run_id, "eval_loss") == [4, 8, 8]

    (offline,) = offline_runs(trackers / "wandb")
    assert (offline.project, offline.name) == ("trainer-integration", "integration")
    assert offline.config["learning_rate"] == 0.1
    assert offline.config["model/num_parameters"] == 2
    loss_steps = [row["train/global_step"] for row in offline.history if "train/loss" in row]
    eval_steps = [row["train/global_step"] for row in offline.history if "eval/loss" in row]
    assert (loss_steps, eval_steps) == ([4, 8], [4, 8, 8])
    assert offline.summary["train_runtime"] > 0
    assert offline.summary["train_loss"] == pytest.approx(
        trainer.state.log_history[-2]["train_loss"]
    )


def test_report_to_all_builds_every_installed_reporter(tmp_path: Path) -> None:
    trainer = _trainer(_args(tmp_path, "all"))
    names = {getattr(callback, "name", None) for callback in trainer.callback_handler.callbacks}
    installed = set(installed_plugins(REPORT_TO_GROUP))
    assert installed >= {"tensorboard", "wandb", "mlflow"}
    assert installed <= names
    assert trainer.args.report_to == sorted(installed)  # expanded, as the reference does


def test_an_unknown_reporter_lists_the_installed_ones_and_their_package(tmp_path: Path) -> None:
    with pytest.raises(UnknownPluginError, match=r"'wandb' \(from trainer-reporting\)"):
        _trainer(_args(tmp_path, ["comet_ml"]))


CORE_ONLY_PYTHON = REPO / ".venvs" / "trainer-core" / "bin" / "python"


@pytest.mark.skipif(
    not CORE_ONLY_PYTHON.exists(), reason="needs the trainer-core-only environment (.venvs)"
)
def test_without_trainer_reporting_the_error_says_what_to_install() -> None:
    """In an environment without trainer-reporting, the loader the loop resolves
    ``report_to`` with (trainer-core's, which needs no torch to start) names the extra."""
    code = textwrap.dedent(
        """
        from trainer_core import REPORT_TO_GROUP, load_plugin
        try:
            load_plugin(REPORT_TO_GROUP, "wandb")
        except ValueError as error:
            print(type(error).__name__, error)
        """
    )
    result = subprocess.run(
        [str(CORE_ONLY_PYTHON), "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.startswith("UnknownPluginError"), result.stderr[-2000:]
    assert "pip install 'trainer-reporting[wandb]'" in result.stdout
