"""One real optuna search whose trials differ in what the loop and the runtime read
(batch size, accumulation, precision, learning rate and schedule, epochs, seed), with
TensorBoard, offline W&B and an MLflow file store reporting, each read back per trial."""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import Trainer, TrainerCallback, TrainingArguments
from trainer_testing.models import RegressionDataset, RegressionModel
from trainer_testing.wandb_offline import offline_runs

optuna = pytest.importorskip("optuna")
pytest.importorskip("wandb")
pytest.importorskip("mlflow")

_TRIALS = [  # trial number -> its values (hp_space suggests the learning rate)
    {"bf16": False, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1,
     "lr_scheduler_type": "linear", "num_train_epochs": 1, "seed": 3},
    {"bf16": True, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 2,
     "lr_scheduler_type": "constant", "num_train_epochs": 2, "seed": 4},
]  # fmt: skip
_STEPS = [4, 2]  # 16 examples: 4 batches of 4; 2 batches of 8 per update, over 2 epochs


class _AutocastProbe(RegressionModel):
    """Records whether each training forward ran under bf16 autocast."""

    def __init__(self, seen: list[list[bool]]) -> None:
        super().__init__()
        seen.append([])
        self.seen = seen[-1]

    def forward(self, input_x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        if self.training:
            self.seen.append(torch.is_autocast_enabled("cpu"))
        return super().forward(input_x, labels)


class _Record(TrainerCallback):
    def __init__(self) -> None:
        self.trials: list[dict[str, Any]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.trials.append({"name": state.trial_name, "params": state.trial_params, "lrs": []})

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.trials[-1]["lrs"].append(optimizer.param_groups[0]["lr"])


def _space(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.1),
        **_TRIALS[trial.number],
    }


@pytest.mark.slow  # about 8 s: two trials, each opening a W&B and an MLflow run
def test_each_trial_trains_and_reports_with_its_own_values(trackers: Path) -> None:
    output = trackers / "out"
    autocast: list[list[bool]] = []
    record = _Record()
    args = TrainingArguments(
        output_dir=str(output),
        run_name="search",
        logging_steps=1,
        eval_strategy="epoch",
        save_strategy="epoch",
        report_to=["tensorboard", "wandb", "mlflow"],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model_init=lambda: _AutocastProbe(autocast),
        args=args,
        train_dataset=RegressionDataset(16),
        eval_dataset=RegressionDataset(8, seed=1),
        callbacks=[record],
    )
    trainer.hyperparameter_search(
        _space,
        n_trials=2,
        backend="optuna",
        hp_name=lambda trial: f"trial-{trial.number}",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )

    lrs = [trial["params"]["learning_rate"] for trial in record.trials]
    assert autocast[1:] == [[False] * 4, [True] * 4]  # [0]: the model built at init
    assert [len(trial["lrs"]) for trial in record.trials] == _STEPS
    assert record.trials[0]["lrs"][0] == lrs[0] > record.trials[0]["lrs"][-1]  # linear
    assert set(record.trials[1]["lrs"]) == {lrs[1]}  # constant
    for number, trial in enumerate(record.trials):
        state = json.loads(
            (
                output / f"trial-{number}" / f"checkpoint-{_STEPS[number]}" / "trainer_state.json"
            ).read_text()
        )
        assert (state["trial_name"], state["trial_params"]) == (f"trial-{number}", trial["params"])
    assert trainer.args.bf16 is False and trainer.args.per_device_train_batch_size == 8

    _check_wandb(trackers / "wandb", lrs)
    _check_mlflow(trackers, lrs)
    _check_tensorboard(Path(args.logging_dir), lrs)


def _check_wandb(folder: Path, lrs: list[float]) -> None:
    import wandb

    wandb.finish()  # the last trial's run stays open for a later evaluate()
    runs = sorted(offline_runs(folder), key=lambda run: run.name)
    assert [(run.name, run.group) for run in runs] == [("trial-0", "search"), ("trial-1", "search")]
    for run, lr, steps, values in zip(runs, lrs, _STEPS, _TRIALS, strict=True):
        assert run.config["learning_rate"] == lr and run.config["bf16"] == values["bf16"]
        logged = [row["train/global_step"] for row in run.history if "train/loss" in row]
        assert logged == list(range(1, steps + 1))


def _check_mlflow(folder: Path, lrs: list[float]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient((folder / "mlruns").as_uri())
    runs = {run.info.run_name: run for run in client.search_runs(["0"])}
    assert sorted(runs) == ["trial-0", "trial-1"]  # one run per trial, named after it
    for number, (lr, steps) in enumerate(zip(lrs, _STEPS, strict=True)):
        run = runs[f"trial-{number}"]
        assert float(run.data.params["learning_rate"]) == lr
        assert run.data.params["gradient_accumulation_steps"] == str(
            _TRIALS[number]["gradient_accumulation_steps"]
        )
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted(metric.step for metric in history) == list(range(1, steps + 1))


def _check_tensorboard(logging_dir: Path, lrs: list[float]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for number, (lr, steps) in enumerate(zip(lrs, _STEPS, strict=True)):
        (events,) = glob.glob(os.path.join(logging_dir, f"trial-{number}", "events.*"))
        reader = EventAccumulator(events)
        reader.Reload()
        logged = reader.Scalars("train/learning_rate")
        assert [event.step for event in logged] == list(range(1, steps + 1))
        assert logged[0].value == pytest.approx(lr)
