"""TensorBoardCallback writes real event files; they are read back with TensorBoard's reader."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trainer_args import TrainingArguments
from trainer_core import MissingExtraError, TrainerControl, TrainerState
from trainer_reporting import TensorBoardCallback


def _events(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir))
    accumulator.Reload()
    return accumulator


def _scalars(accumulator: Any, tag: str) -> list[tuple[int, float]]:
    return [(event.step, pytest.approx(event.value)) for event in accumulator.Scalars(tag)]


def _text(accumulator: Any, tag: str) -> str:
    return accumulator.Tensors(f"{tag}/text_summary")[0].tensor_proto.string_val[0].decode()


class _Model:
    config: ClassVar[dict[str, Any]] = {"hidden_size": 8}


def _run(callback: TensorBoardCallback, args: Any, state: TrainerState) -> None:
    control = TrainerControl()
    callback.on_train_begin(args, state, control, model=_Model())
    state.global_step = 2
    callback.on_log(args, state, control, logs={"loss": 0.5, "learning_rate": 0.01})
    state.global_step = 4
    logs = {"eval_loss": 0.25, "eval_note": "fine", "eval_sizes": [1, 2]}
    callback.on_log(args, state, control, logs=logs)
    callback.on_train_end(args, state, control)


def test_logs_become_scalars_with_sections_and_steps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"))
    with caplog.at_level(logging.WARNING, logger="trainer_reporting"):
        _run(TensorBoardCallback(), args, TrainerState())
    events = _events(tmp_path / "tb")
    assert _scalars(events, "train/loss") == [(2, 0.5)]
    assert _scalars(events, "train/learning_rate") == [(2, 0.01)]
    assert _scalars(events, "eval/loss") == [(4, 0.25)]
    assert _text(events, "eval/note") == "fine"
    assert "eval/sizes" not in str(events.Tags())
    assert "'eval/sizes'" in caplog.text
    assert json.loads(_text(events, "args"))["output_dir"] == str(tmp_path)
    assert json.loads(_text(events, "model_config")) == {"hidden_size": 8}


def test_the_arguments_text_holds_the_settings_without_private_entries(tmp_path: Path) -> None:
    """The reference's ``args`` text is ``to_dict()`` as JSON; ours must not add the
    private ``_`` record our arguments keep for rebuilding copies of themselves."""
    args = TrainingArguments(
        output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"), eval_strategy="steps"
    )
    assert any(key.startswith("_") for key in args.to_dict())  # what would leak
    _run(TensorBoardCallback(), args, TrainerState())
    settings = json.loads(_text(_events(tmp_path / "tb"), "args"))
    assert [key for key in settings if key.startswith("_")] == []
    assert settings["eval_strategy"] == "steps"
    assert settings["learning_rate"] == args.learning_rate


def test_hyperparameters_are_recorded(tmp_path: Path) -> None:
    args = TrainingArguments(
        output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"), learning_rate=0.125
    )
    _run(TensorBoardCallback(), args, TrainerState())
    (hparams_dir,) = [path for path in (tmp_path / "tb").iterdir() if path.is_dir()]
    content = _events(hparams_dir).PluginTagToContent("hparams")
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert data.session_start_info.hparams["learning_rate"].number_value == 0.125


def test_a_search_trial_writes_to_its_own_folder(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"))
    state = TrainerState(is_hyper_param_search=True, trial_name="trial-7")
    _run(TensorBoardCallback(), args, state)
    assert _scalars(_events(tmp_path / "tb" / "trial-7"), "train/loss") == [(2, 0.5)]


def test_tensorboard_logging_dir_chooses_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later upstream releases read the folder from this variable (no ``logging_dir``)."""
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "env"))
    args = TrainingArguments(output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"))
    callback = TensorBoardCallback()
    _run(callback, args, TrainerState())
    _run(callback, args, TrainerState(is_hyper_param_search=True, trial_name="trial-1"))
    assert _scalars(_events(tmp_path / "env"), "train/loss") == [(2, 0.5)]
    assert _scalars(_events(tmp_path / "env" / "trial-1"), "train/loss") == [(2, 0.5)]
    assert not (tmp_path / "tb").exists()


def test_only_the_main_process_writes(tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"))
    _run(TensorBoardCallback(), args, TrainerState(is_world_process_zero=False))
    assert not (tmp_path / "tb").exists()


def test_a_given_writer_is_used_and_closed(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "mine"))
    args = TrainingArguments(output_dir=str(tmp_path), logging_dir=str(tmp_path / "tb"))
    callback = TensorBoardCallback(tb_writer=writer)
    _run(callback, args, TrainerState())
    assert callback.tb_writer is None
    assert _scalars(_events(tmp_path / "mine"), "eval/loss") == [(4, 0.25)]
    assert not (tmp_path / "tb").exists()


def test_without_any_writer_library_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingExtraError, match=r"trainer-reporting\[tensorboard\]"):
        TensorBoardCallback()
