"""``log_level``: our info lines reach stderr when the application configured no logging,
exactly once whatever it configured, and transformers' verbosity follows the setting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from trainer_args import TrainingArguments
from trainer_loop import Trainer

_HEADER = "***** Running training *****"


class _Data(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": torch.ones(1) * index, "labels": torch.ones(1)}


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


@contextmanager
def _unconfigured_root() -> Iterator[None]:
    """The root logger as a script that never configured logging has it (no handlers;
    pytest adds its capturing ones)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = saved


def _trainer(tmp_path: Any, **overrides: Any) -> Trainer:
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=2,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    options.update(overrides)
    return Trainer(model=_Net(), args=TrainingArguments(**options), train_dataset=_Data())


def test_info_lines_reach_stderr_once_without_logging_configured(tmp_path, capsys) -> None:
    with _unconfigured_root():
        _trainer(tmp_path, log_level="info")  # a second Trainer adds no second handler
        _trainer(tmp_path, log_level="info", save_strategy="steps", save_steps=2).train()
    err = capsys.readouterr().err
    assert err.count(_HEADER) == 1
    assert err.count("Num examples = 4") == 1
    assert "Total optimization steps = 2" in err
    assert f"Saving model checkpoint to {tmp_path / 'checkpoint-2'}" in err


def test_a_configured_application_gets_each_line_once_and_stderr_none(
    tmp_path, capsys, caplog
) -> None:
    caplog.set_level(logging.INFO)  # the application's own handler, on the root logger
    _trainer(tmp_path, log_level="info").train()
    assert [r.getMessage() for r in caplog.records].count(_HEADER) == 1
    assert _HEADER not in capsys.readouterr().err


def test_a_handler_on_our_logger_is_left_to_print_alone(tmp_path, capsys) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]  # a collecting handler
    with _unconfigured_root():
        trainer = _trainer(tmp_path, log_level="info")
        logging.getLogger("trainer_loop").addHandler(handler)  # after ours, on purpose
        trainer.train()
    assert [r.getMessage() for r in records].count(_HEADER) == 1
    assert _HEADER not in capsys.readouterr().err


def test_warning_level_keeps_info_lines_quiet(tmp_path, capsys) -> None:
    with _unconfigured_root():
        _trainer(tmp_path, log_level="warning").train()
    assert _HEADER not in capsys.readouterr().err


def test_transformers_verbosity_follows_the_process_level(tmp_path) -> None:
    hf_logging = pytest.importorskip("transformers.utils.logging")
    before = hf_logging.get_verbosity()
    try:
        _trainer(tmp_path, log_level="error")
        assert hf_logging.get_verbosity() == logging.ERROR
        hf_logging.set_verbosity(logging.INFO)
        _trainer(tmp_path, log_level="passive")
        assert hf_logging.get_verbosity() == logging.INFO
    finally:
        hf_logging.set_verbosity(before)


def test_passive_follows_a_verbosity_set_through_transformers(tmp_path, capsys) -> None:
    """Example scripts call ``set_verbosity_info()`` and keep ``log_level="passive"``:
    the reference then logs its run header; so do we, and the process level a script
    reads (to set the datasets/transformers loggers) is INFO as the reference's."""
    hf_logging = pytest.importorskip("transformers.utils.logging")
    before = hf_logging.get_verbosity()
    try:
        hf_logging.set_verbosity_info()
        with _unconfigured_root():
            trainer = _trainer(tmp_path, log_level="passive")
            assert trainer.args.get_process_log_level() == logging.INFO
            trainer.train()
        assert _HEADER in capsys.readouterr().err
        assert hf_logging.get_verbosity() == logging.INFO  # passive: left as it was
        hf_logging.set_verbosity_warning()
        with _unconfigured_root():
            quiet = _trainer(tmp_path / "quiet", log_level="passive")
            assert quiet.args.get_process_log_level() == logging.WARNING
    finally:
        hf_logging.set_verbosity(before)
