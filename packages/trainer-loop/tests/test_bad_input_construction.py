"""Constructor arguments that cannot work are refused by ``Trainer(...)`` itself, with a
message naming the argument and the fix, instead of failing later inside torch or
training with no effect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainer_args import TrainingArguments
from trainer_loop import DataCollatorWithPadding, Trainer


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        out = self.linear(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


def _data(count: int = 8) -> list[dict[str, torch.Tensor]]:
    return [{"x": torch.full((3,), float(i)), "labels": torch.tensor(1.0)} for i in range(count)]


def _args(tmp_path: Path, **extra: Any) -> TrainingArguments:
    settings: dict[str, Any] = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        max_steps=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(extra)
    return TrainingArguments(**settings)


# --------------------------------------------------------------- model and args
def test_a_model_class_is_refused_with_the_instance_to_pass(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"model is the class _Net, not a model"):
        Trainer(model=_Net, args=_args(tmp_path))


@pytest.mark.parametrize(
    ("built", "message"),
    [
        (_Net, r"the value model_init returned is the class _Net, not a model"),
        ({"linear.weight": torch.zeros(1, 3)}, r"returned must be a torch.nn.Module.*state dict"),
    ],
)
def test_what_model_init_returns_is_checked_like_a_model(tmp_path, built, message) -> None:
    with pytest.raises(TypeError, match=message):
        Trainer(model_init=lambda: built, args=_args(tmp_path))


def test_a_model_init_needing_two_arguments_is_refused(tmp_path) -> None:
    def build(trial, size):  # the Trainer passes at most the trial
        return _Net()

    with pytest.raises(RuntimeError, match="model_init takes 2 required arguments"):
        Trainer(model_init=build, args=_args(tmp_path))
    Trainer(model_init=lambda trial=None, size=3: _Net(), args=_args(tmp_path))  # defaults: fine


def test_a_model_name_is_refused_with_how_to_load_it(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"'bert-base-uncased', not a model: load it first"):
        Trainer(model="bert-base-uncased", args=_args(tmp_path))


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        ({"output_dir": "out"}, r"TrainingArguments\(\*\*your_dict\)"),
        ("out", r"TrainingArguments\(output_dir='out'\)"),
    ],
)
def test_arguments_that_are_not_training_arguments_are_refused(args: Any, fix: str) -> None:
    with pytest.raises(TypeError, match=fix):
        Trainer(model=_Net(), args=args)


@pytest.mark.slow  # the first import of transformers in a process
def test_transformers_training_arguments_are_refused_with_the_import_to_use(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none")
    with pytest.raises(TypeError, match=r"from trainer import TrainingArguments"):
        Trainer(model=_Net(), args=args)


# ------------------------------------------------------------------- collator
def test_a_collator_that_cannot_be_called_is_refused_at_construction(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"data_collator must be a function.*got dict"):
        Trainer(model=_Net(), args=_args(tmp_path), data_collator={"padding": True})


def test_a_collator_class_is_refused_with_the_instance_to_pass(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"class DataCollatorWithPadding, not a collator"):
        Trainer(model=_Net(), args=_args(tmp_path), data_collator=DataCollatorWithPadding)


# -------------------------------------------------------------------- datasets
def test_a_dict_of_splits_or_columns_is_refused_as_the_training_set(tmp_path) -> None:
    splits = {"train": _data(), "test": _data()}
    with pytest.raises(TypeError, match=r"keys 'train', 'test'.*dataset\['train'\]"):
        Trainer(model=_Net(), args=_args(tmp_path), train_dataset=splits)
    by_position = dict(enumerate(_data()))  # a map-style dataset all the same
    trainer = Trainer(model=_Net(), args=_args(tmp_path), train_dataset=by_position)
    assert trainer.train().global_step == 2


# ------------------------------------------------------------------- callbacks
class _DuckLogger:
    """Not a TrainerCallback subclass, but it has an event method: accepted."""

    def __init__(self) -> None:
        self.logs = 0

    def on_log(self, args, state, control, **kwargs):
        self.logs += 1


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        ("tensorboard", r"'tensorboard'.*report_to='tensorboard'"),
        (object(), r"callbacks\[0\] is object\(\), which has no callback method"),
        (print, r"callbacks\[0\] is builtin_function_or_method\(\)"),
    ],
)
def test_callbacks_no_event_would_reach_are_refused(tmp_path, callback, message) -> None:
    with pytest.raises(TypeError, match=message):
        Trainer(model=_Net(), args=_args(tmp_path), callbacks=[callback])


def test_add_callback_refuses_what_no_event_would_reach_and_keeps_the_list(tmp_path) -> None:
    trainer = Trainer(model=_Net(), args=_args(tmp_path))
    before = list(trainer.callback_handler.callbacks)
    with pytest.raises(
        TypeError, match=r"the callback given to add_callback is 'wandb'.*report_to"
    ):
        trainer.add_callback("wandb")
    assert trainer.callback_handler.callbacks == before
    trainer.add_callback(_DuckLogger())  # an event method is enough
    assert isinstance(trainer.callback_handler.callbacks[-1], _DuckLogger)


def test_a_callback_outside_a_list_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"callbacks must be a list.*callbacks=\[_DuckLogger"):
        Trainer(model=_Net(), args=_args(tmp_path), callbacks=_DuckLogger())
    duck = _DuckLogger()  # in a list it is accepted: it has an event method
    args = _args(tmp_path, logging_steps=1)
    Trainer(model=_Net(), args=args, train_dataset=_data(), callbacks=[duck]).train()
    assert duck.logs >= 2


# ------------------------------------------------------------------ optimizers
def test_an_optimizer_built_for_another_model_is_refused(tmp_path) -> None:
    stale = torch.optim.SGD(_Net().parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"holds none of the parameters of the _Net"):
        Trainer(model=_Net(), args=_args(tmp_path), optimizers=(stale, None))
    model = _Net()  # an optimizer over part of the model is fine
    weight_only = torch.optim.SGD([model.linear.weight], lr=0.1)
    trainer = Trainer(model=model, args=_args(tmp_path), optimizers=(weight_only, None))
    assert trainer.optimizer is weight_only


def test_an_optimizer_class_is_refused_with_the_two_ways_to_pass_one(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"optimizers\[0\] is the class AdamW.*cls_and_kwargs"):
        Trainer(model=_Net(), args=_args(tmp_path), optimizers=(torch.optim.AdamW, None))


def test_a_name_where_an_optimizer_or_scheduler_belongs_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"optimizers\[0\] is 'adam', not an optimizer.*optim="):
        Trainer(model=_Net(), args=_args(tmp_path), optimizers=("adam", None))
    model = _Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"optimizers\[1\] is 'cosine'.*lr_scheduler_type"):
        Trainer(model=model, args=_args(tmp_path), optimizers=(optimizer, "cosine"))


@pytest.mark.parametrize(
    "name", ["compute_metrics", "preprocess_logits_for_metrics", "compute_loss_func"]
)
def test_a_function_argument_that_cannot_be_called_is_refused(tmp_path, name) -> None:
    with pytest.raises(TypeError, match=rf"{name} must be a function, got 'accuracy'"):
        Trainer(model=_Net(), args=_args(tmp_path), **{name: "accuracy"})


def test_a_model_init_that_cannot_be_called_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"model_init must be a function, got int\(\)"):
        Trainer(args=_args(tmp_path), model_init=3)
    with pytest.raises(TypeError, match=r"model_init is a model \(_Net\).*model=\.\.\."):
        Trainer(args=_args(tmp_path), model_init=_Net())


def _scheduled(model: nn.Module) -> torch.optim.lr_scheduler.LambdaLR:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)


def test_a_scheduler_without_its_optimizer_is_refused_unless_a_subclass_builds_it(
    tmp_path,
) -> None:
    model = _Net()
    scheduler = _scheduled(model)
    with pytest.raises(ValueError, match=r"\(None, scheduler\).*\(scheduler.optimizer"):
        Trainer(model=model, args=_args(tmp_path), optimizers=(None, scheduler))

    class OwnOptimizer(Trainer):
        def create_optimizer(self):
            self.optimizer = scheduler.optimizer
            return self.optimizer

    trainer = OwnOptimizer(model=model, args=_args(tmp_path), optimizers=(None, scheduler))
    assert trainer.lr_scheduler is scheduler


def test_a_scheduler_built_on_another_optimizer_is_refused(tmp_path) -> None:
    model = _Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"scheduler was built on another optimizer"):
        Trainer(model=model, args=_args(tmp_path), optimizers=(optimizer, _scheduled(_Net())))


# ------------------------------------------------------------------- output_dir
def test_an_output_dir_that_is_a_file_is_refused_by_name(tmp_path) -> None:
    path = tmp_path / "results"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match=r"is a file, not a folder"):
        Trainer(model=_Net(), args=_args(tmp_path, output_dir=str(path)))
    assert path.read_text() == "keep me"


def test_an_output_dir_under_a_file_is_refused_naming_the_file(tmp_path) -> None:
    (tmp_path / "results").write_text("")
    args = _args(tmp_path, output_dir=str(tmp_path / "results" / "run"))
    with pytest.raises(NotADirectoryError, match=r"cannot be created: .*results' is a file"):
        Trainer(model=_Net(), args=args)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_dir_is_refused_when_checkpoints_will_be_saved(tmp_path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        args = _args(tmp_path, output_dir=str(folder), save_strategy="steps", save_steps=1)
        trainer = Trainer(model=_Net(), args=args, train_dataset=_data())  # may just predict
        with pytest.raises(PermissionError, match=r"is not writable"):
            trainer.train()
    finally:
        folder.chmod(0o700)


def test_writability_is_checked_when_training_starts(tmp_path, monkeypatch) -> None:
    """The same refusal where permissions cannot be taken away (root): ``os.access``
    stands in for a folder this process may not write; nothing is written or trained."""
    folder = tmp_path / "locked"
    folder.mkdir()
    args = _args(tmp_path, output_dir=str(folder), save_strategy="steps", save_steps=1)
    model = _Net()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model=model, args=args, train_dataset=_data())
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda path, mode: real_access(path, mode) and path != str(folder)
    )
    with pytest.raises(PermissionError, match=r"locked' is not writable"):
        trainer.train()
    assert list(folder.iterdir()) == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    args.save_strategy = "no"
    trainer.train()  # nothing to save: no refusal


def test_a_training_stream_without_max_steps_is_refused_when_built(tmp_path) -> None:
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from _data()

    with pytest.raises(ValueError, match=r"train_dataset \(Stream\) has no length.*max_steps"):
        Trainer(model=_Net(), args=_args(tmp_path, max_steps=-1), train_dataset=Stream())
    Trainer(model=_Net(), args=_args(tmp_path, max_steps=2), train_dataset=Stream())
