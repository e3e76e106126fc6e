"""The standard lines a run logs, word for word as users of the reference grep for them:
the training header, the evaluation block, the resume lines and the end of training."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from trainer_args import TrainingArguments
from trainer_core import ExportableState, TrainerCallback
from trainer_loop import Trainer


class _Data(Dataset):
    def __init__(self, size: int = 10) -> None:
        self.x = torch.linspace(-1, 1, size).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "labels": 3 * self.x[index]}


class _Stream(IterableDataset):
    def __iter__(self):
        yield from (_Data(5)[index] for index in range(5))


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)  # 2 parameters
        self.frozen = nn.Linear(1, 1)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


class _Counter(TrainerCallback, ExportableState):
    """A callback whose state a checkpoint keeps."""

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {}}


def _trainer(tmp_path: Any, callbacks: Any = None, **overrides: Any) -> Trainer:
    options: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 3,
        "gradient_accumulation_steps": 2,
        "num_train_epochs": 2,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
        "log_level": "info",
    }
    args = TrainingArguments(**{**options, **overrides})
    return Trainer(
        model=_Net(),
        args=args,
        train_dataset=_Data(),
        eval_dataset=_Data(7),
        callbacks=callbacks,
    )


def _messages(caplog: Any) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_the_training_header_has_the_reference_lines(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        _trainer(tmp_path).train()
    messages = _messages(caplog)
    start = messages.index("***** Running training *****")
    assert messages[start : start + 10] == [
        "***** Running training *****",
        "  Num examples = 10",
        "  Num Epochs = 2",
        "  Num update steps per epoch = 3",  # 5 batches of 2, accumulated by 2
        "  Instantaneous batch size per device = 2",
        "  Total train batch size (w. parallel, distributed & accumulation) = 4",
        "  Gradient Accumulation steps = 2",
        "  Total optimization steps = 6",
        "  Number of trainable parameters = 2",
        "\n\nTraining completed.\n\n",
    ]


def test_max_steps_overriding_the_epochs_is_noted_at_construction(tmp_path, caplog) -> None:
    notice = "max_steps is given, it will override any value given in num_train_epochs"
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        _trainer(tmp_path / "epochs")
        assert notice not in _messages(caplog)
        _trainer(tmp_path / "steps", max_steps=3)
    assert notice in _messages(caplog)


def test_a_stream_counts_its_run_as_one_epoch_in_the_header(tmp_path, caplog) -> None:
    trainer = _trainer(tmp_path, max_steps=3)
    trainer.train_dataset = _Stream()
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        trainer.train()
    messages = _messages(caplog)
    assert "  Num update steps per epoch = 3" in messages
    assert "  Num examples = 12" in messages  # 3 steps of 2 x 2


def test_evaluation_and_prediction_blocks(tmp_path, caplog) -> None:
    trainer = _trainer(tmp_path)
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        trainer.evaluate()
        trainer.predict(_Data(4))
        trainer.evaluate(_Stream())
    assert _messages(caplog) == [
        "\n***** Running Evaluation *****",
        "  Num examples = 7",
        "  Batch size = 3",
        "\n***** Running Prediction *****",
        "  Num examples = 4",
        "  Batch size = 3",
        "\n***** Running Evaluation *****",
        "  Num examples: Unknown",
        "  Batch size = 3",
    ]


def test_a_resumed_run_says_where_it_continues(tmp_path, caplog) -> None:
    _trainer(tmp_path, save_strategy="steps", save_steps=4).train()
    checkpoint = str(tmp_path / "checkpoint-4")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        _trainer(tmp_path, save_steps=4).train(resume_from_checkpoint=checkpoint)
    messages = _messages(caplog)
    assert f"Loading model from {checkpoint}." in messages
    header_end = messages.index("  Number of trainable parameters = 2")
    assert messages[header_end + 1 : header_end + 3] == [
        "  Resuming training from checkpoint with epoch 1 and global step 4",
        "  Fast-forwarding the dataloader past 1 epochs and 2 batches to resume from the "
        "exact training state.",
    ]


def test_ignore_data_skip_leaves_out_the_fast_forward_line(tmp_path, caplog) -> None:
    _trainer(tmp_path, save_strategy="steps", save_steps=4).train()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        _trainer(tmp_path, save_steps=4, ignore_data_skip=True).train(
            resume_from_checkpoint=str(tmp_path / "checkpoint-4")
        )
    messages = _messages(caplog)
    assert "  Resuming training from checkpoint with epoch 1 and global step 4" in messages
    assert not any("Fast-forwarding" in message for message in messages)


def test_restored_and_missing_callback_states_are_reported(tmp_path, caplog) -> None:
    _trainer(tmp_path, callbacks=[_Counter()], save_strategy="steps", save_steps=4).train()
    with caplog.at_level(logging.INFO, logger="trainer_loop"):
        _trainer(
            tmp_path, callbacks=[_Counter()], restore_callback_states_from_checkpoint=True
        ).train(resume_from_checkpoint=str(tmp_path / "checkpoint-4"))
        _trainer(tmp_path, restore_callback_states_from_checkpoint=True).train(
            resume_from_checkpoint=str(tmp_path / "checkpoint-4")
        )
    messages = _messages(caplog)
    assert "Continuing training from checkpoint, restoring _Counter's state" in messages
    assert (
        "The checkpoint holds the state of callbacks this trainer does not have; "
        "ignoring it: _Counter"
    ) in messages


def test_the_end_of_training_deletion_names_save_total_limit(tmp_path, caplog) -> None:
    trainer = _trainer(
        tmp_path,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        greater_is_better=True,  # the loss falls: the first evaluation stays the best
        learning_rate=0.1,
    )
    with caplog.at_level(logging.INFO, logger="trainer_loop._training_loop"):
        trainer.train()
    newest = str(tmp_path / "checkpoint-6")
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-2")
    assert f"Deleting older checkpoint [{newest}] due to args.save_total_limit" in _messages(caplog)


def test_a_model_without_save_pretrained_is_noted_at_each_save(tmp_path, caplog) -> None:
    trainer = _trainer(tmp_path, save_strategy="steps", save_steps=3)
    with caplog.at_level(logging.INFO, logger="trainer_loop._saving"):
        trainer.train()
        trainer.save_model()
    checkpoint = str(tmp_path / "checkpoint-3")
    note = "Trainer.model is not a `PreTrainedModel`, only saving its state dict."
    messages = [m for m in _messages(caplog) if m.startswith(("Saving", "Trainer.model"))]
    assert messages == [
        f"Saving model checkpoint to {checkpoint}",
        note,
        f"Saving model checkpoint to {tmp_path / 'checkpoint-6'}",
        note,
        f"Saving model checkpoint to {tmp_path}",
        note,
    ]
