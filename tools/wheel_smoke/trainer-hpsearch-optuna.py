"""trainer-hpsearch[optuna] next to trainer-loop: a 2-trial search runs."""

import tempfile

from _regression import Regression, regression_data

from trainer_args import TrainingArguments
from trainer_loop import Trainer

data = regression_data(12)
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(
        out,
        max_steps=2,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
    )
    trainer = Trainer(model_init=Regression, args=args, train_dataset=data, eval_dataset=data)
    best = trainer.hyperparameter_search(
        hp_space=lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-1)},
        backend="optuna",
        n_trials=2,
        direction="minimize",
    )
    assert "learning_rate" in best.hyperparameters, best
print("trainer-hpsearch[optuna]: ok")
