"""ProgressCallback and PrinterCallback output."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import Any

import pytest

from trainer_core import (
    CallbackHandler,
    DefaultFlowCallback,
    PrinterCallback,
    ProgressCallback,
    TrainerControl,
    TrainerState,
)

ARGS = SimpleNamespace()


def _train(callback: ProgressCallback, state: TrainerState, logs: dict[str, Any]) -> None:
    handler = CallbackHandler([DefaultFlowCallback, callback])
    control = handler.on_train_begin(ARGS, state, TrainerControl())
    for _ in range(state.max_steps):
        state.global_step += 1
        handler.on_step_end(ARGS, state, control)
    handler.on_log(ARGS, state, control, logs)
    handler.on_train_end(ARGS, state, control)


def test_training_bar_counts_steps_and_logs_print_through_it() -> None:
    stream = io.StringIO()
    callback = ProgressCallback(max_str_len=10, file=stream)
    logs = {"loss": 0.123456789, "note": "x" * 50, "total_flos": 1e15, "step": 5}
    _train(callback, TrainerState(max_steps=5), logs)
    output = stream.getvalue()
    assert "5/5" in output
    assert "'loss': '0.1235'" in output
    assert "'step': 5" in output
    assert "total_flos" not in output
    assert "x" * 11 not in output and "length 50" in output and "max_str_len=10" in output
    assert logs["total_flos"] == 1e15 and logs["note"] == "x" * 50  # caller's dict untouched
    assert callback.training_bar is None


def test_nothing_is_shown_off_the_local_main_process() -> None:
    stream = io.StringIO()
    state = TrainerState(max_steps=3, is_local_process_zero=False)
    callback = ProgressCallback(file=stream)
    _train(callback, state, {"loss": 1.0})
    handler = CallbackHandler([DefaultFlowCallback, callback])
    handler.eval_dataloader = [1, 2]
    handler.on_prediction_step(ARGS, state, TrainerControl())
    assert stream.getvalue() == ""
    assert callback.prediction_bar is None


def test_evaluation_bar_follows_the_eval_dataloader_and_closes() -> None:
    stream = io.StringIO()
    callback = ProgressCallback(file=stream)
    handler = CallbackHandler([DefaultFlowCallback, callback])
    handler.eval_dataloader = ["batch"] * 3
    state, control = TrainerState(), TrainerControl()
    for _ in range(3):
        handler.on_prediction_step(ARGS, state, control)
    assert callback.prediction_bar is not None
    handler.on_evaluate(ARGS, state, control, {"eval_loss": 0.5})
    assert callback.prediction_bar is None
    assert "3/3" in stream.getvalue()
    for _ in range(2):
        handler.on_prediction_step(ARGS, state, control)
    handler.on_predict(ARGS, state, control, {})
    assert callback.prediction_bar is None


def test_unsized_eval_dataloader_draws_no_bar() -> None:
    stream = io.StringIO()
    callback = ProgressCallback(file=stream)
    callback.on_prediction_step(
        ARGS, TrainerState(), TrainerControl(), eval_dataloader=iter([1, 2])
    )
    assert callback.prediction_bar is None and stream.getvalue() == ""


def test_logs_outside_training_are_not_printed_by_the_progress_bar(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ProgressCallback().on_log(ARGS, TrainerState(), TrainerControl(), logs={"eval_loss": 1.0})
    assert capsys.readouterr() == ("", "")


def test_default_streams_are_tqdms(capsys: pytest.CaptureFixture[str]) -> None:
    _train(ProgressCallback(), TrainerState(max_steps=2), {"loss": 2.0})
    captured = capsys.readouterr()
    assert "{'loss': '2'}" in captured.out
    assert "2/2" in captured.err


def test_printer_prints_formatted_logs_on_the_main_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    printer = PrinterCallback()
    logs = {"loss": 0.5, "total_flos": 3.0, "epoch": 1}
    printer.on_log(ARGS, TrainerState(), TrainerControl(), logs=logs)
    printer.on_log(ARGS, TrainerState(is_local_process_zero=False), TrainerControl(), logs=logs)
    assert capsys.readouterr().out == "{'loss': '0.5', 'epoch': 1}\n"
    assert "total_flos" in logs


def test_printer_writes_to_a_given_stream() -> None:
    stream = io.StringIO()
    PrinterCallback(file=stream).on_log(ARGS, TrainerState(), TrainerControl(), logs={"a": 1})
    assert stream.getvalue() == "{'a': 1}\n"
