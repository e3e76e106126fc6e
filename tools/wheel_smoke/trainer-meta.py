"""The meta-package: the documented API in one import, with the reference's module
paths; report_to="all" trains with the reporters whose library is installed, none
included."""

import os
import tempfile

from _regression import Regression, regression_data

from trainer import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments
from trainer.trainer_utils import get_last_checkpoint


class CountSteps(TrainerCallback):
    steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        CountSteps.steps += 1


# Under trainer[all], "all" includes W&B and MLflow: keep them on local files (MLflow 3
# refuses its file store unless MLFLOW_ALLOW_FILE_STORE opts in).
scratch = tempfile.mkdtemp()
os.environ.update(
    WANDB_MODE="offline",
    WANDB_DIR=scratch,
    MLFLOW_TRACKING_URI=f"file://{scratch}/mlruns",
    MLFLOW_ALLOW_FILE_STORE="true",
)

data = regression_data(12)
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(
        out,
        max_steps=3,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to="all",
        eval_strategy="steps",
        eval_steps=3,
        save_steps=3,
        load_best_model_at_end=True,
    )
    trainer = Trainer(
        model=Regression(),
        args=args,
        train_dataset=data,
        eval_dataset=data,
        callbacks=[CountSteps(), EarlyStoppingCallback(early_stopping_patience=2)],
    )
    trainer.train()
    assert CountSteps.steps == 3
    assert get_last_checkpoint(out).endswith("checkpoint-3")
print("trainer: ok")
