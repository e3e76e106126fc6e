"""MLflowCallback against a real MLflow file store in tmp, read back with MlflowClient."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trainer_args import TrainingArguments
from trainer_core import MissingExtraError, TrainerControl, TrainerState
from trainer_reporting import MLflowCallback
from trainer_reporting._mlflow_params import flatten_params, run_params

_ENV = (
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "MLFLOW_NESTED_RUN",
    "MLFLOW_TAGS",
    "MLFLOW_FLATTEN_PARAMS",
    "MLFLOW_MAX_LOG_PARAMS",
    "HF_MLFLOW_LOG_ARTIFACTS",
    "DISABLE_MLFLOW_INTEGRATION",
)


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # MLflow 3 refuses the file store (in maintenance) unless this opts in; it is the
    # store that runs here without a server or database driver.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    from mlflow.tracking import fluent

    # set_experiment (MLFLOW_EXPERIMENT_NAME) remembers the experiment for the process, in
    # a module global and in MLFLOW_EXPERIMENT_ID; each test starts from a fresh store.
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    yield uri
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(uri)


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    # Sorted: asynchronous logging may store two batches in either order.
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


class _Model:
    config: ClassVar[dict[str, Any]] = {"hidden_size": 8, "notes": "x" * 7000}


def _train(callback: MLflowCallback, args: Any, state: TrainerState) -> None:
    control = TrainerControl()
    callback.on_train_begin(args, state, control, model=_Model())
    state.global_step = 2
    callback.on_log(args, state, control, logs={"loss": 0.5, "learning_rate": 0.01})
    state.global_step = 4
    logs = {"eval_loss": 0.25, "eval_acc(top1)": 0.75, "eval_note": "fine"}
    callback.on_log(args, state, control, logs=logs)
    callback.on_train_end(args, state, control)


def _only_run(client: Any, experiment: str = "Default") -> Any:
    found = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([found.experiment_id])
    return run


def test_run_holds_params_metrics_tags_and_finishes(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "trainer-tests")
    monkeypatch.setenv("MLFLOW_TAGS", json.dumps({"team": "ml", "release": "rc1"}))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="ml-run")
    callback = MLflowCallback()
    with caplog.at_level(logging.WARNING, logger="trainer_reporting"):
        _train(callback, args, TrainerState())
    state = TrainerState(global_step=5)  # an evaluate() after train() joins the same run
    callback.on_log(args, state, TrainerControl(), logs={"eval_loss": 0.125})
    import mlflow

    mlflow.flush_async_logging()
    client = _client(tracking_uri)
    run = _only_run(client, "trainer-tests")
    assert run.info.run_name == "ml-run"
    assert run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == str(args.learning_rate)
    assert run.data.params["hidden_size"] == "8"
    assert "_resolved_spellings" not in run.data.params  # a private record, not a setting
    assert "notes" not in run.data.params
    assert "'notes'" in caplog.text
    assert {"team": "ml", "release": "rc1"}.items() <= run.data.tags.items()
    run_id = run.info.run_id
    assert _history(client, run_id, "loss") == [(2, 0.5)]
    assert _history(client, run_id, "learning_rate") == [(2, 0.01)]
    assert _history(client, run_id, "eval_loss") == [(4, 0.25), (5, 0.125)]
    assert _history(client, run_id, "eval_acc_top1_") == [(4, 0.75)]
    assert "eval_note" not in run.data.metrics
    assert "'eval_note'" in caplog.text


def test_nested_run_inside_the_scripts_run_and_resuming_it(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    parent = mlflow.start_run(run_name="script-run")
    monkeypatch.setenv("MLFLOW_NESTED_RUN", "1")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="child")
    _train(MLflowCallback(), args, TrainerState())
    assert mlflow.active_run().info.run_id == parent.info.run_id  # the script's run stays open
    client = _client(tracking_uri)
    (child,) = client.search_runs(
        [parent.info.experiment_id], filter_string="attributes.run_name = 'child'"
    )
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.status == "FINISHED"
    mlflow.end_run()

    monkeypatch.delenv("MLFLOW_NESTED_RUN")
    monkeypatch.setenv("MLFLOW_RUN_ID", child.info.run_id)
    state = TrainerState(global_step=4)  # resumed from checkpoint-4
    callback = MLflowCallback()
    callback.on_train_begin(args, state, TrainerControl(), model=_Model())
    state.global_step = 6
    callback.on_log(args, state, TrainerControl(), logs={"loss": 0.25})
    callback.on_train_end(args, state, TrainerControl())
    assert _history(client, child.info.run_id, "loss") == [(2, 0.5), (6, 0.25)]


def test_resuming_a_run_with_changed_arguments_keeps_its_params(
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A later process resuming with MLFLOW_RUN_ID has other arguments (``logging_dir``
    holds the start time); MLflow refuses to change a param, which must not stop training."""
    first = TrainingArguments(output_dir=str(tmp_path / "out"), logging_dir="runs/first")
    _train(MLflowCallback(), first, TrainerState())
    client = _client(tracking_uri)
    run_id = _only_run(client).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    resumed = TrainingArguments(
        output_dir=str(tmp_path / "out"), logging_dir="runs/second", num_train_epochs=5
    )
    with caplog.at_level(logging.WARNING, logger="trainer_reporting"):
        _train(MLflowCallback(), resumed, TrainerState())
    run = client.get_run(run_id)
    assert run.data.params["logging_dir"] == "runs/first"
    assert run.data.params["num_train_epochs"] == str(first.num_train_epochs)
    assert "'logging_dir'" in caplog.text and "'num_train_epochs'" in caplog.text
    assert run.info.status == "FINISHED"
    assert _history(client, run_id, "loss") == [(2, 0.5), (2, 0.5)]


def test_each_train_call_gets_its_own_run(tracking_uri: str, tmp_path: Path) -> None:
    callback = MLflowCallback()
    for trial in ("trial-0", "trial-1"):
        args = TrainingArguments(output_dir=str(tmp_path / trial), run_name=trial)
        _train(callback, args, TrainerState())
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name("Default").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment])}
    assert sorted(runs) == ["trial-0", "trial-1"]
    for name, run in runs.items():
        assert run.data.params["run_name"] == name
        assert _history(client, run.info.run_id, "loss") == [(2, 0.5)]


def test_a_search_trials_run_is_named_after_the_trial(tracking_uri: str, tmp_path: Path) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"), run_name="search")
    callback = MLflowCallback()
    for trial in ("trial-0", "trial-1", None):  # None: a search without hp_name
        _train(callback, args, TrainerState(is_hyper_param_search=True, trial_name=trial))
    client = _client(tracking_uri)
    experiment = client.get_experiment_by_name("Default").experiment_id
    names = [run.info.run_name for run in client.search_runs([experiment])]
    assert {"trial-0", "trial-1"} < set(names) and len(set(names)) == 3
    assert "search" not in names  # MLflow named the unnamed trial's run
    for run in client.search_runs([experiment]):
        assert run.data.params["run_name"] == "search"  # the search, to group by
        assert _history(client, run.info.run_id, "loss") == [(2, 0.5)]


def test_the_scripts_own_run_is_used_and_left_open(tracking_uri: str, tmp_path: Path) -> None:
    import mlflow

    own = mlflow.start_run(run_name="script-run")
    args = TrainingArguments(output_dir=str(tmp_path / "out"))
    _train(MLflowCallback(), args, TrainerState())
    assert mlflow.active_run().info.run_id == own.info.run_id
    client = _client(tracking_uri)
    assert _history(client, own.info.run_id, "loss") == [(2, 0.5)]
    assert client.get_run(own.info.run_id).info.status == "RUNNING"


def test_checkpoints_are_copied_with_hf_mlflow_log_artifacts(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_MLFLOW_LOG_ARTIFACTS", "TRUE")
    args = TrainingArguments(output_dir=str(tmp_path / "out"))
    callback = MLflowCallback()
    state = TrainerState(global_step=2)
    callback.on_train_begin(args, state, TrainerControl(), model=None)
    checkpoint = tmp_path / "out" / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"\x00")
    callback.on_save(args, state, TrainerControl())
    callback.on_train_end(args, state, TrainerControl())
    client = _client(tracking_uri)
    run = _only_run(client)
    listed = [item.path for item in client.list_artifacts(run.info.run_id, "checkpoint-2")]
    assert listed == ["checkpoint-2/model.safetensors"]


def test_other_processes_and_disabled_integration_log_nothing(
    tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = TrainingArguments(output_dir=str(tmp_path / "out"))
    _train(MLflowCallback(), args, TrainerState(is_world_process_zero=False))
    monkeypatch.setenv("DISABLE_MLFLOW_INTEGRATION", "TRUE")
    _train(MLflowCallback(), args, TrainerState())
    assert not (tmp_path / "mlruns").exists()


def test_params_are_batched_flattened_and_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    params = TrainingArguments(output_dir=str(tmp_path)).to_dict()
    assert len(params) > 100
    batches = run_params(params)
    assert [len(batch) for batch in batches] == [100, len(params) - 100]
    assert {key: value for batch in batches for key, value in batch.items()} == params
    monkeypatch.setenv("MLFLOW_MAX_LOG_PARAMS", "3")
    assert run_params(params) == [dict(list(params.items())[:3])]
    monkeypatch.delenv("MLFLOW_MAX_LOG_PARAMS")
    nested = {"fsdp_config": {"xla": False, "inner": {"a": 1}}, "seed": 1}
    assert run_params(nested) == [nested]
    monkeypatch.setenv("MLFLOW_FLATTEN_PARAMS", "true")
    expected = {"fsdp_config.xla": False, "fsdp_config.inner.a": 1, "seed": 1}
    assert run_params(nested) == [expected]
    assert flatten_params(nested) == expected


def test_without_mlflow_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISABLE_MLFLOW_INTEGRATION", raising=False)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"trainer-reporting\[mlflow\]"):
        MLflowCallback()
