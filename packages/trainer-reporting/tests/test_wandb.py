"""WandbCallback against real wandb in offline mode; the run files are read back.

``WANDB_MODE=offline`` makes wandb write its records to ``WANDB_DIR`` instead of a
server; ``trainer_testing.wandb_offline`` parses them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trainer_args import TrainingArguments
from trainer_core import MissingExtraError, TrainerControl, TrainerState
from trainer_reporting import WandbCallback
from trainer_testing.wandb_offline import offline_runs, offline_wandb, read_run


@pytest.fixture
def wandb_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An offline wandb whose every folder (runs, artifacts staging, cache) is in tmp."""
    with offline_wandb(monkeypatch, tmp_path / "wandb-root", tmp_path, "trainer-tests") as root:
        yield root


class _Model:
    """A model as the callback sees one: a config, a size, and save_pretrained."""

    config: ClassVar[dict[str, Any]] = {"hidden_size": 8}

    def num_parameters(self) -> int:
        return 17

    def save_pretrained(self, folder: str) -> None:
        (Path(folder) / "weights.bin").write_bytes(b"\x00" * 4)


def _train(callback: WandbCallback, args: Any, state: TrainerState) -> None:
    control, model = TrainerControl(), _Model()
    callback.on_train_begin(args, state, control, model=model)
    state.global_step, state.epoch = 2, 0.5
    callback.on_log(args, state, control, logs={"loss": 0.5, "learning_rate": 0.01}, model=model)
    checkpoint = Path(args.output_dir, "checkpoint-2")
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"\x00")
    callback.on_save(args, state, control, model=model)
    state.global_step, state.epoch = 4, 1.0
    callback.on_log(args, state, control, logs={"eval_loss": 0.25}, model=model)
    callback.on_log(args, state, control, logs={"train_runtime": 1.5, "train_loss": 0.4})
    callback.on_train_end(args, state, control, model=model)


def _finish() -> None:
    import wandb

    wandb.finish()


def test_run_holds_config_history_summary_and_models(
    wandb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_LOG_MODEL", "checkpoint")
    monkeypatch.setenv("WANDB_RUN_ID", "resumed01")  # how a resumed training names its run
    monkeypatch.setenv("WANDB_RESUME", "allow")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="my-run")
    _train(WandbCallback(), args, TrainerState())
    _finish()
    (run,) = offline_runs(wandb_dir)
    assert (run.run_id, run.project, run.name) == ("resumed01", "trainer-tests", "my-run")
    assert run.config["learning_rate"] == args.learning_rate
    assert run.config["hidden_size"] == 8
    assert run.config["model/num_parameters"] == 17
    assert not [key for key in run.config if key.startswith("_resolved")]  # private record
    assert run.history == [
        {"train/loss": 0.5, "train/learning_rate": 0.01, "train/global_step": 2},
        {"eval/loss": 0.25, "train/global_step": 4},
        {"train/global_step": 4},
    ]
    assert run.summary["train_runtime"] == 1.5
    assert run.summary["train_loss"] == 0.4
    assert "train/train_runtime" not in run.summary
    assert run.metrics["*"] == "train/global_step"
    aliases = [aliases for _, _, aliases, _ in run.artifacts]
    assert "base_model" in aliases[0]
    assert "checkpoint_global_step_2" in aliases[1]
    assert "epoch_0.5" in aliases[1]
    assert "final_model" in aliases[2]
    assert {name for name, *_ in run.artifacts} == {"model-my-run"}
    assert run.artifacts[2][3]["final_model"] is True
    assert run.artifacts[2][3]["train_runtime"] == 1.5


def test_the_final_model_artifact_holds_what_save_model_writes(
    wandb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference fills it with ``Trainer.save_model``'s files, training_args.bin
    included, and the architecture as ``print(model)`` writes it (a final newline)."""
    monkeypatch.setenv("WANDB_LOG_MODEL", "end")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="saved")
    _train(WandbCallback(), args, TrainerState())
    _finish()
    (run,) = offline_runs(wandb_dir)
    files = {
        sorted(set(aliases) - {"latest"})[0]: contents
        for (_, _, aliases, _), contents in zip(run.artifacts, run.artifact_files, strict=True)
    }
    architecture_size = len(f"{_Model()}\n".encode())
    assert files["base_model"] == {"model_architecture.txt": architecture_size}
    final = files["final_model"]
    assert final["model_architecture.txt"] == architecture_size
    expected = {"model_architecture.txt", "weights.bin", "training_args.json"}
    if importlib.util.find_spec("torch") is not None:
        expected.add("training_args.bin")
    assert set(final) == expected


@dataclasses.dataclass
class _Adapter:
    r: int = 2
    target_modules: tuple[str, ...] = ("c_attn",)


class _PeftModel(_Model):
    peft_config: ClassVar[dict[str, Any]] = {"default": _Adapter()}


def test_a_peft_model_s_adapter_configs_are_in_the_run_config(
    wandb_dir: Path, tmp_path: Path
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="adapter")
    WandbCallback().on_train_begin(args, TrainerState(), TrainerControl(), model=_PeftModel())
    _finish()
    (run,) = offline_runs(wandb_dir)
    assert run.config["peft_config"] == {"default": {"r": 2, "target_modules": ["c_attn"]}}
    assert run.config["hidden_size"] == 8


def test_without_a_run_name_wandb_names_the_run_not_the_output_path(
    wandb_dir: Path, tmp_path: Path
) -> None:
    output_dir = str(tmp_path / "out")
    args = TrainingArguments(output_dir=output_dir)  # run_name defaults to output_dir
    _train(WandbCallback(), args, TrainerState())
    _finish()
    (run,) = offline_runs(wandb_dir)
    assert output_dir not in (run.name or "")  # offline, W&B leaves it empty until a sync


def test_each_search_trial_is_its_own_run_in_a_group(wandb_dir: Path, tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="search")
    callback = WandbCallback()
    for trial in ("trial-0", "trial-1"):
        state = TrainerState(is_hyper_param_search=True, trial_name=trial)
        callback.on_train_begin(args, state, TrainerControl(), model=_Model())
        state.global_step = 1
        callback.on_log(args, state, TrainerControl(), logs={"loss": 1.0})
    _finish()
    runs = sorted(offline_runs(wandb_dir), key=lambda run: run.name)
    assert [(run.name, run.group) for run in runs] == [("trial-0", "search"), ("trial-1", "search")]
    assert all(run.history == [{"train/loss": 1.0, "train/global_step": 1}] for run in runs)


def test_trials_without_a_name_are_grouped_and_not_all_named_run_name(
    wandb_dir: Path, tmp_path: Path
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="search")
    callback = WandbCallback()
    for _ in range(2):  # hyperparameter_search without hp_name: trials have no name
        state = TrainerState(is_hyper_param_search=True)
        callback.on_train_begin(args, state, TrainerControl(), model=_Model())
    _finish()
    runs = offline_runs(wandb_dir)
    assert [run.group for run in runs] == ["search", "search"]
    assert "search" not in {run.name for run in runs}  # W&B named each trial's run
    assert len({run.run_id for run in runs}) == 2


def test_a_run_the_script_started_is_used(wandb_dir: Path, tmp_path: Path) -> None:
    import wandb

    wandb.init(project="own-project", id="ownrun01", name="mine")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="ignored")
    callback = WandbCallback()
    state = TrainerState()
    callback.on_train_begin(args, state, TrainerControl(), model=None)
    callback.on_predict(args, state, TrainerControl(), metrics={"test_loss": 0.125})
    _finish()
    (run,) = offline_runs(wandb_dir)
    assert (run.run_id, run.project, run.name) == ("ownrun01", "own-project", "mine")
    assert run.config["run_name"] == "ignored"
    (row,) = run.history
    assert row["test/loss"] == 0.125


def test_logs_after_the_script_finished_the_run_go_to_a_new_run(
    wandb_dir: Path, tmp_path: Path
) -> None:
    """``wandb.finish()`` after train(), then evaluate() / predict(): logging into the
    closed run would fail the call."""
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="again")
    callback = WandbCallback()
    state = TrainerState(global_step=2)
    callback.on_train_begin(args, state, TrainerControl(), model=_Model())
    _finish()
    callback.on_log(args, state, TrainerControl(), logs={"eval_loss": 0.5}, model=_Model())
    callback.on_predict(args, state, TrainerControl(), metrics={"test_loss": 0.25})
    _finish()
    # Both may start within one second, where offline_runs gives no order.
    first, second = sorted(offline_runs(wandb_dir), key=lambda run: len(run.history))
    assert first.history == []
    assert second.name == "again"
    assert second.history == [
        {"eval/loss": 0.5, "train/global_step": 2},
        {"test/loss": 0.25, "train/global_step": 2},
    ]


def test_other_processes_and_wandb_disabled_send_nothing(
    wandb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"))
    _train(WandbCallback(), args, TrainerState(is_world_process_zero=False))
    monkeypatch.setenv("WANDB_DISABLED", "true")
    args = TrainingArguments(output_dir=str(tmp_path / "out2"))
    _train(WandbCallback(), args, TrainerState())
    assert offline_runs(wandb_dir) == []


def test_unknown_log_model_setting_disables_model_logging(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from trainer_reporting._wandb import log_model_setting

    monkeypatch.setenv("WANDB_LOG_MODEL", "sometimes")
    assert log_model_setting() == "false"
    assert "sometimes" in caplog.text
    monkeypatch.setenv("WANDB_LOG_MODEL", "true")
    assert log_model_setting() == "end"
    monkeypatch.setenv("WANDB_LOG_MODEL", "END")
    assert log_model_setting() == "end"


def test_without_wandb_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_DISABLED", raising=False)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(MissingExtraError, match=r"trainer-reporting\[wandb\]"):
        WandbCallback()


def test_a_run_file_read_in_the_middle_of_a_write_gives_its_complete_records(
    wandb_dir: Path, tmp_path: Path
) -> None:
    """wandb's core process may still be writing when a test reads: every prefix of a
    real run file reads as the rows wholly inside it, never as a decode error."""
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="cut")
    _train(WandbCallback(), args, TrainerState())
    _finish()
    (path,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    complete = read_run(path)  # waits for the exit record: the file is whole after it
    whole = path.read_bytes()
    cut = tmp_path / "cut.wandb"
    seen_lengths = set()
    for length in range(0, len(whole) + 1, max(1, len(whole) // 97)):
        cut.write_bytes(whole[:length])
        history = read_run(cut, timeout=0).history
        assert history == complete.history[: len(history)]
        seen_lengths.add(len(history))
    assert seen_lengths == set(range(len(complete.history) + 1))
