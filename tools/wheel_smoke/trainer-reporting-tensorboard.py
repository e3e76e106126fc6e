"""trainer-reporting[tensorboard] next to trainer-loop: report_to="tensorboard" writes
an event file during a 3-step run."""

import tempfile
from pathlib import Path

from _regression import Regression, regression_data

from trainer_args import TrainingArguments
from trainer_core import REPORT_TO_GROUP, installed_plugins
from trainer_loop import Trainer

assert set(installed_plugins(REPORT_TO_GROUP)) == {"tensorboard"}

data = regression_data(12)
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(
        out,
        max_steps=3,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to="tensorboard",
        logging_steps=1,
        logging_dir=f"{out}/runs",
    )
    Trainer(model=Regression(), args=args, train_dataset=data).train()
    events = list(Path(out, "runs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0, list(Path(out).rglob("*"))
print("trainer-reporting[tensorboard]: ok")
