"""``report_to="mlflow"``: an MLflow run with the arguments as params and logs as metrics."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, ClassVar

from trainer_core import TrainerCallback, TrainerControl, TrainerState, import_optional
from trainer_reporting._logs import env_flag, model_config_dict, run_settings, scalar_value
from trainer_reporting._mlflow_params import run_params

logger = logging.getLogger(__name__)

_UNSAFE_METRIC_CHARS = re.compile(r"[^0-9A-Za-z_\-\.\ :/]")


class MLflowCallback(TrainerCallback):
    """Logs the arguments (and the model's configuration) as params and every log as
    metrics at ``state.global_step``, in one MLflow run per training. Main process only.

    The run is started at train begin and ended at train end when this callback started
    it; a run the script already started is used as is and left open (unless
    ``MLFLOW_NESTED_RUN`` or ``MLFLOW_RUN_ID`` asks for another). Logs arriving after
    the run ended (an ``evaluate()`` after ``train()``) are added to that same run; the
    next ``train()`` (a search trial, say) starts a new one. The run is named
    ``run_name``; a search trial's run is named after the trial (``hp_name``), or by
    MLflow when the trial has no name.

    Environment:
        MLFLOW_TRACKING_URI: where runs are stored (MLflow reads it itself; a URI the
            script set with ``mlflow.set_tracking_uri`` wins); unset: MLflow's default.
        MLFLOW_EXPERIMENT_NAME: the experiment (created if missing); default "Default".
        MLFLOW_RUN_ID: attach to this existing run (resuming from a checkpoint).
        MLFLOW_NESTED_RUN: a true value starts the run nested in the active one.
        MLFLOW_TAGS: a JSON object of tags to set on the run.
        MLFLOW_FLATTEN_PARAMS: a true value flattens nested dicts (``a.b``) in params.
        MLFLOW_MAX_LOG_PARAMS: log at most this many params.
        HF_MLFLOW_LOG_ARTIFACTS: a true value copies each saved checkpoint folder into
            the run's artifacts (under ``checkpoint-<step>``).
        DISABLE_MLFLOW_INTEGRATION: "TRUE" turns this callback off.

    Raises:
        MissingExtraError: mlflow (mlflow-skinny) is not installed.
    """

    name: ClassVar[str] = "mlflow"

    def __init__(self) -> None:
        self._ml_flow: Any = None
        if os.getenv("DISABLE_MLFLOW_INTEGRATION", "FALSE").upper() == "TRUE":
            logger.warning("DISABLE_MLFLOW_INTEGRATION is set: nothing is sent to MLflow.")
        else:
            self._ml_flow = import_optional(
                "mlflow", package="trainer-reporting", extra="mlflow", feature="MLflowCallback"
            )
        self._initialized = False
        self._auto_end_run = False
        self._log_artifacts = False
        self._run_id: str | None = None
        self._ended = False

    def setup(self, args: Any, state: TrainerState, model: Any) -> None:
        """Read the environment, start or join the run and log the params (main process)."""
        self._initialized, self._ended = True, False
        self._log_artifacts = env_flag("HF_MLFLOW_LOG_ARTIFACTS")
        if self._ml_flow is None or not state.is_world_process_zero:
            return
        self._start_run(args, state)
        self._run_id = self._ml_flow.active_run().info.run_id
        params = {**(model_config_dict(model) or {}), **run_settings(args)}
        logged = self._ml_flow.get_run(self._run_id).data.params  # resumed or script's run
        for batch in run_params(params, logged):
            self._ml_flow.log_params(batch)  # MLflow's own setting decides: see on_log
        tags = os.getenv("MLFLOW_TAGS")
        if tags:
            self._ml_flow.set_tags(json.loads(tags))

    def _start_run(self, args: Any, state: TrainerState) -> None:
        nested = env_flag("MLFLOW_NESTED_RUN")
        run_id = os.getenv("MLFLOW_RUN_ID")
        if self._ml_flow.active_run() is not None and not nested and not run_id:
            return  # the script's own run
        experiment = os.getenv("MLFLOW_EXPERIMENT_NAME")
        if experiment:
            self._ml_flow.set_experiment(experiment)
        self._ml_flow.start_run(run_id=run_id, run_name=run_name(args, state), nested=nested)
        self._auto_end_run = True

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not self._initialized or self._ended:  # another train() (a search trial): new run
            self.setup(args, state, kwargs.get("model"))

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self._initialized:
            self.setup(args, state, kwargs.get("model"))
        if self._ml_flow is None or not state.is_world_process_zero:
            return
        metrics = numeric_metrics(logs or {})
        if metrics:
            # Synchronous unless MLFLOW_ENABLE_ASYNC_LOGGING=true: MLflow's end_run only
            # hands queued data to its writers, so an asynchronous log may still be on its
            # way when training returns (a file store then holds an empty metric).
            self._ml_flow.log_metrics(metrics, step=state.global_step, run_id=self._run_id)

    def on_save(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not (self._initialized and self._log_artifacts and self._ml_flow is not None):
            return
        if not state.is_world_process_zero:
            return
        name = f"checkpoint-{state.global_step}"
        logger.info("Copying %s to the MLflow run's artifacts; this may take a while.", name)
        self._ml_flow.log_artifacts(
            os.path.join(args.output_dir, name), artifact_path=name, run_id=self._run_id
        )

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not (self._initialized and state.is_world_process_zero and self._ml_flow is not None):
            return
        if self._auto_end_run and self._ml_flow.active_run() is not None:
            self._ml_flow.end_run()
            self._ended = True
        else:  # the script's run stays open: only make what was logged durable
            self._ml_flow.flush_async_logging()


def run_name(args: Any, state: TrainerState) -> str | None:
    """The name of the run to start: ``run_name``, or in a hyperparameter search the
    trial's name (``hp_name``), else none so that MLflow gives each trial's run a name
    of its own instead of calling them all ``run_name``."""
    if state.is_hyper_param_search:
        return state.trial_name
    return args.run_name


def numeric_metrics(logs: dict[str, Any]) -> dict[str, float | int]:
    """The numeric entries of ``logs``, keys made safe for MLflow (characters it refuses,
    like parentheses, become ``_``); other values are dropped with a warning."""
    metrics: dict[str, float | int] = {}
    for key, value in logs.items():
        number = scalar_value(value)
        if number is None:
            logger.warning(
                "MLflow: the logged value %r (type %s) for key %r is not a number, so it "
                "was not logged as a metric.",
                value,
                type(value).__name__,
                key,
            )
            continue
        metrics[_UNSAFE_METRIC_CHARS.sub("_", key)] = number
    return metrics
