"""Callbacks users keep: transformers' own classes and subclasses of its TrainerCallback.

Users switch the Trainer import to ours and keep ``from transformers import
EarlyStoppingCallback, TrainerCallback`` and friends. Here each such callback runs in our
Trainer, and where it matters the same run through transformers' Trainer is the oracle.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

from trainer import Trainer, TrainingArguments  # noqa: E402

VOCAB = 40


class Tokens(torch.utils.data.Dataset):
    """Fixed random sequences that are their own labels (language modelling)."""

    def __init__(self, count: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, VOCAB, (count, 8), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


def _model() -> transformers.GPT2LMHeadModel:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=16, n_layer=1, n_head=2, n_positions=16
    )
    config.bos_token_id = config.eos_token_id = None  # the defaults lie outside VOCAB
    return transformers.GPT2LMHeadModel(config)


def _args(trainer_args: type, output_dir: str, **overrides) -> object:
    settings = dict(
        output_dir=output_dir,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    settings.update(overrides)
    return trainer_args(**settings)


def _names(trainer) -> list[str]:
    return [type(callback).__name__ for callback in trainer.callback_handler.callbacks]


# ------------------------------------------------------ events, kwargs, order
class Journal(transformers.TrainerCallback):
    """A transformers-based callback recording each event, its step and kwarg names."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, int, list[str]]] = []


def _journal_method(event: str):
    def record(self, args, state, control, **kwargs):
        # ``tokenizer`` is ours alone: the v4.34 API passed it, newer releases do not.
        names = sorted(name for name in kwargs if name != "tokenizer")
        self.entries.append((event, state.global_step, names))

    return record


for _event in [name for name in vars(transformers.TrainerCallback) if name.startswith("on_")]:
    setattr(Journal, _event, _journal_method(_event))


def _journal_run(trainer_class: type, args_class: type, output_dir: str) -> Journal:
    journal = Journal()
    args = _args(
        args_class,
        output_dir,
        gradient_accumulation_steps=2,
        max_steps=4,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=4,
    )
    trainer = trainer_class(
        _model(), args, train_dataset=Tokens(32), eval_dataset=Tokens(8), callbacks=[journal]
    )
    trainer.train()
    trainer.predict(Tokens(4))
    return journal


def test_a_transformers_callback_sees_the_reference_events_and_kwargs(tmp_path) -> None:
    ours = _journal_run(Trainer, TrainingArguments, str(tmp_path / "ours"))
    reference = _journal_run(
        transformers.Trainer, transformers.TrainingArguments, str(tmp_path / "reference")
    )
    assert ours.entries == reference.entries
    logged = {name for event, _, names in ours.entries if event == "on_log" for name in names}
    assert {"logs", "model", "optimizer", "lr_scheduler", "train_dataloader"} <= logged


# -------------------------------------------------------------- early stopping
def _early_stopping_trainer(output_dir: str, **overrides) -> Trainer:
    # learning_rate=0: the evaluation loss never moves, so it never improves by the
    # threshold and each evaluation after the first counts towards the patience.
    settings = dict(
        max_steps=20,
        learning_rate=0.0,
        eval_strategy="steps",
        eval_steps=1,
        save_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
    )
    args = _args(TrainingArguments, output_dir, **{**settings, **overrides})
    stopper = transformers.EarlyStoppingCallback(
        early_stopping_patience=2, early_stopping_threshold=0.5
    )
    return Trainer(
        _model(), args, train_dataset=Tokens(32), eval_dataset=Tokens(8), callbacks=[stopper]
    )


def _stopper(trainer: Trainer):
    (stopper,) = [
        callback
        for callback in trainer.callback_handler.callbacks
        if isinstance(callback, transformers.EarlyStoppingCallback)
    ]
    return stopper


def test_transformers_early_stopping_is_checkpointed_and_restored(tmp_output) -> None:
    trainer = _early_stopping_trainer(tmp_output)
    trainer.train()
    assert trainer.state.global_step == 3  # as transformers' Trainer stops
    with open(os.path.join(tmp_output, "checkpoint-2", "trainer_state.json")) as handle:
        stored = json.load(handle)["stateful_callbacks"]["EarlyStoppingCallback"]
    assert stored == {
        "args": {"early_stopping_patience": 2, "early_stopping_threshold": 0.5},
        "attributes": {"early_stopping_patience_counter": 1},
    }

    resumed = _early_stopping_trainer(tmp_output, restore_callback_states_from_checkpoint=True)
    seen: list[int] = []

    class Peek(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            seen.append(_stopper(resumed).early_stopping_patience_counter)

    resumed.add_callback(Peek)
    resumed.train(resume_from_checkpoint=os.path.join(tmp_output, "checkpoint-2"))
    assert seen == [1]
    assert resumed.state.global_step == 3  # one more miss, not two: the count carried over


def test_stateful_callbacks_are_listed_from_train_begin(tmp_output) -> None:
    trainer = _early_stopping_trainer(tmp_output, max_steps=1)
    listed: list[list[str]] = []

    class Peek(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            listed.append(sorted(state.stateful_callbacks))

    trainer.add_callback(Peek)
    trainer.train()
    assert listed == [["EarlyStoppingCallback", "TrainerControl"]]


# ------------------------------------------- transformers' default callbacks
def test_removing_transformers_printer_removes_ours(tmp_output) -> None:
    trainer = Trainer(_model(), _args(TrainingArguments, tmp_output, disable_tqdm=True))
    assert _names(trainer) == ["DefaultFlowCallback", "PrinterCallback"]
    trainer.remove_callback(transformers.PrinterCallback)
    assert _names(trainer) == ["DefaultFlowCallback"]
    popped = trainer.pop_callback(transformers.DefaultFlowCallback)
    assert type(popped).__module__.startswith("trainer_core")
    assert trainer.callback_handler.callbacks == []


def test_swapping_in_transformers_progress_bar_keeps_one(tmp_output, capsys) -> None:
    args = _args(TrainingArguments, tmp_output, disable_tqdm=False, max_steps=2, logging_steps=1)
    trainer = Trainer(_model(), args, train_dataset=Tokens(8), eval_dataset=Tokens(8))
    trainer.remove_callback(transformers.ProgressCallback)
    trainer.add_callback(transformers.ProgressCallback)
    bars = [
        callback
        for callback in trainer.callback_handler.callbacks
        if type(callback).__name__ == "ProgressCallback"
    ]
    assert [type(bar).__module__ for bar in bars] == ["transformers.trainer_callback"]
    trainer.train()
    trainer.evaluate()
    assert "'loss'" in capsys.readouterr().out  # transformers' bar printed the logs


# ------------------------------------------------------------ public patterns
class SaveAdapterCallback(transformers.TrainerCallback):
    """The QLoRA-style ``SavePeftModelCallback``: save the model into the new checkpoint."""

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        kwargs["model"].save_pretrained(os.path.join(folder, "adapter_model"))
        return control

    def on_train_end(self, args, state, control, **kwargs):
        open(os.path.join(args.output_dir, "completed"), "w").close()


def test_save_adapter_pattern_and_control_switches_set_by_callbacks(tmp_output) -> None:
    events: list[tuple[str, int]] = []

    class Steer(transformers.TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            control.should_evaluate = True

        def on_evaluate(self, args, state, control, metrics, **kwargs):
            events.append(("evaluate", state.global_step))
            control.should_save = True

        def on_log(self, args, state, control, logs, **kwargs):
            if "loss" in logs and state.global_step >= 6:
                control.should_training_stop = True

    args = _args(
        TrainingArguments, tmp_output, num_train_epochs=3, logging_steps=3, save_strategy="no"
    )
    trainer = Trainer(
        _model(), args, train_dataset=Tokens(16), callbacks=[Steer, SaveAdapterCallback]
    )
    trainer.eval_dataset = Tokens(8)
    trainer.train()
    assert events == [("evaluate", 4), ("evaluate", 6)]
    assert sorted(os.listdir(tmp_output)) == ["checkpoint-4", "checkpoint-6", "completed"]
    assert os.path.isdir(os.path.join(tmp_output, "checkpoint-6", "adapter_model"))


def test_transformers_tensorboard_callback_writes_events(tmp_output, monkeypatch) -> None:
    pytest.importorskip("tensorboard")
    from transformers.integrations import TensorBoardCallback

    log_dir = os.path.join(tmp_output, "tb")
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", log_dir)
    args = _args(TrainingArguments, tmp_output, max_steps=2, logging_steps=1)
    trainer = Trainer(_model(), args, train_dataset=Tokens(8), callbacks=[TensorBoardCallback])
    trainer.train()
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(log_dir))
