"""trainer-loop alone: a tiny model trains 3 steps on CPU, evaluates, saves and resumes; the
reporters and search backends it does not bring are refused with the install command."""

import tempfile
from pathlib import Path

from _regression import Regression, regression_data

from trainer_args import TrainingArguments
from trainer_core import UnknownPluginError
from trainer_loop import Trainer

data = regression_data(24)
with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(
        out,
        max_steps=3,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to="none",
        save_strategy="steps",
        save_steps=3,
        logging_steps=1,
    )
    trainer = Trainer(model=Regression(), args=args, train_dataset=data, eval_dataset=data)
    result = trainer.train()
    assert result.global_step == 3, result
    assert "eval_loss" in trainer.evaluate()
    assert (Path(out) / "checkpoint-3" / "trainer_state.json").exists()
    # Resuming reads every file back, the RNG states (numpy's included) too.
    resumed = Trainer(
        model=Regression(),
        args=TrainingArguments(**{**args.to_dict(), "max_steps": 4}),
        train_dataset=data,
    )
    assert resumed.train(resume_from_checkpoint=f"{out}/checkpoint-3").global_step == 4

    try:
        Trainer(
            model=Regression(),
            args=TrainingArguments(out, use_cpu=True, report_to="tensorboard"),
            train_dataset=data,
        )
    except UnknownPluginError as error:
        assert "pip install 'trainer-reporting[tensorboard]'" in str(error), error
    else:
        raise AssertionError("report_to='tensorboard' without trainer-reporting must fail")
print("trainer-loop: ok")
