"""``report_to="wandb"``: a Weights & Biases run per training (per trial in a search)."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any, ClassVar

from trainer_core import TrainerCallback, TrainerControl, TrainerState, import_optional
from trainer_reporting._logs import (
    TRUE_VALUES,
    count_parameters,
    env_flag,
    model_config_dict,
    rewrite_logs,
    run_settings,
)
from trainer_reporting._wandb_model import final_model_metadata, model_artifact, numeric_summary

logger = logging.getLogger(__name__)

SUMMARY_KEYS = frozenset(
    {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "train_loss",
        "total_flos",
    }
)
"""Logged once, at the end of training: they go to the run's summary, not its history."""

WATCH_CHOICES = ("gradients", "parameters", "all")

_LOG_MODEL_CHOICES = ("checkpoint", "end", "false")


def log_model_setting() -> str:
    """``WANDB_LOG_MODEL`` as one of "checkpoint", "end" or "false".

    A true-like value ("true", "1") is the older spelling of "end"; anything else
    unknown disables model logging with a warning rather than failing the run.
    """
    value = os.getenv("WANDB_LOG_MODEL", "false")
    if value.lower() in _LOG_MODEL_CHOICES:
        return value.lower()
    if value.upper() in TRUE_VALUES:
        logger.warning("WANDB_LOG_MODEL=%s is read as 'end'; set it to 'end' to say so.", value)
        return "end"
    logger.warning(
        "WANDB_LOG_MODEL=%r is not one of %s, so models are not logged.",
        value,
        ", ".join(_LOG_MODEL_CHOICES),
    )
    return "false"


class WandbCallback(TrainerCallback):
    """Sends the run's configuration, logs and (optionally) models to Weights & Biases.

    At train begin the main process starts a run (or reuses ``wandb.run`` when the
    script already started one; ``WANDB_RUN_ID`` with ``WANDB_RESUME`` resumes an earlier
    run, as ``wandb.init`` reads them), records the arguments and the model's
    configuration as the run's config, and makes ``train/global_step`` the x-axis of every
    metric. Each log is sent with ``train/`` / ``eval/`` / ``test/`` keys; the end-of-
    training figures (``train_runtime``, ``train_loss``, ...) go to the run's summary.
    A hyperparameter-search trial gets its own run, grouped under ``run_name`` and named
    after the trial (``hp_name``; W&B picks a name when there is none). The run stays
    open after training so that a later ``evaluate()`` lands in it; ``wandb.finish()``
    (or the end of the process) closes it, and a log that comes after that starts a
    new run.

    Environment:
        WANDB_PROJECT: project of the run (default "huggingface").
        WANDB_LOG_MODEL: "end" logs the final model as an artifact, "checkpoint" also
            logs every saved checkpoint, "false" (default) logs none.
        WANDB_WATCH: "gradients", "parameters" or "all" asks wandb to watch the model;
            "false" (default) does not.
        WANDB_DISABLED: any true value turns this callback off (prefer ``report_to``).

    Raises:
        MissingExtraError: wandb is not installed.
    """

    name: ClassVar[str] = "wandb"

    def __init__(self) -> None:
        self._wandb: Any = None
        if env_flag("WANDB_DISABLED", ""):
            logger.warning(
                "WANDB_DISABLED is set, so nothing is sent to Weights & Biases. Leave "
                "'wandb' out of report_to instead; the variable is kept for old scripts."
            )
        else:
            self._wandb = import_optional(
                "wandb", package="trainer-reporting", extra="wandb", feature="WandbCallback"
            )
        self._initialized = False
        self._log_model = log_model_setting()

    def setup(self, args: Any, state: TrainerState, model: Any, **kwargs: Any) -> None:
        """Start (or join) the run and record the configuration; main process only.

        Subclasses may override it to customise the run.
        """
        if self._wandb is None:
            return
        self._initialized = True
        if not state.is_world_process_zero:
            return
        if self._wandb.run is None:
            project = os.getenv("WANDB_PROJECT", "huggingface")
            self._wandb.init(project=project, **self._init_arguments(args, state))
        self._wandb.config.update(self._run_config(args, model), allow_val_change=True)
        self._wandb.define_metric("train/global_step")
        self._wandb.define_metric("*", step_metric="train/global_step", step_sync=True)
        self._watch(model, state)
        if self._log_model != "false":  # the architecture, before any training
            artifact = model_artifact(self._wandb, self._artifact_name(args), model)
            self._wandb.run.log_artifact(artifact, aliases=["base_model"])

    @staticmethod
    def _init_arguments(args: Any, state: TrainerState) -> dict[str, Any]:
        """A search trial's run is grouped under ``run_name`` and named after the trial;
        a trial without a name (no ``hp_name``) lets W&B name it, so that the trials'
        runs are not all called ``run_name``. A ``run_name`` that is only the default
        (``output_dir``, a path) lets W&B name the run too, as the reference does."""
        if state.is_hyper_param_search or state.trial_name is not None:
            group = {"group": args.run_name or args.output_dir}
            return group if state.trial_name is None else {"name": state.trial_name, **group}
        if args.run_name is None or args.run_name == args.output_dir:
            return {}
        return {"name": args.run_name}

    @staticmethod
    def _run_config(args: Any, model: Any) -> dict[str, Any]:
        """Model config, then the arguments over it, and ``model/num_parameters``; a PEFT
        model's adapter configs (``{adapter name: config}``) go under ``peft_config``, so
        that runs of different adapters (rank, target modules) can be told apart."""
        config = {**(model_config_dict(model) or {}), **run_settings(args)}
        peft_config = getattr(model, "peft_config", None)
        if peft_config is not None:
            config = {"peft_config": peft_config, **config}
        parameters = count_parameters(model)
        if parameters is not None:
            config["model/num_parameters"] = parameters
        return config

    def _watch(self, model: Any, state: TrainerState) -> None:
        watch = os.getenv("WANDB_WATCH", "false")
        if watch in WATCH_CHOICES and model is not None:
            self._wandb.watch(model, log=watch, log_freq=max(100, state.logging_steps))

    def _artifact_name(self, args: Any) -> str:
        run = self._wandb.run
        default_name = args.run_name is None or args.run_name == args.output_dir
        return f"model-{run.id}" if default_name else f"model-{run.name}"

    def _ensure_run(self, args: Any, state: TrainerState, model: Any) -> None:
        """Set up on first use, and again when the script closed the run since
        (``wandb.finish()`` before a later ``evaluate()`` or ``train()``): logging needs an
        open run, and a new one keeps what comes next instead of failing the call."""
        closed = self._initialized and state.is_world_process_zero and self._wandb.run is None
        if not self._initialized or closed:
            self.setup(args, state, model)

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._wandb is None:
            return
        if state.is_hyper_param_search:  # one run per trial
            self._wandb.finish()
            self._initialized = False
        self._ensure_run(args, state, kwargs.get("model"))

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._wandb is None:
            return
        self._ensure_run(args, state, kwargs.get("model"))
        if not state.is_world_process_zero:
            return
        history = {}
        for key, value in (logs or {}).items():
            if key in SUMMARY_KEYS:
                self._wandb.run.summary[key] = value
            else:
                history[key] = value
        self._wandb.log({**rewrite_logs(history), "train/global_step": state.global_step})

    def on_save(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._log_model != "checkpoint" or not self._initialized:
            return
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        metadata = numeric_summary(self._wandb)
        metadata["model/num_parameters"] = self._wandb.config.get("model/num_parameters")
        artifact = self._wandb.Artifact(self._artifact_name(args), type="model", metadata=metadata)
        artifact.add_dir(folder)
        aliases = [f"epoch_{round(state.epoch, 2)}", f"checkpoint_global_step_{state.global_step}"]
        self._wandb.run.log_artifact(artifact, aliases=aliases)

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._wandb is None or self._log_model == "false" or not self._initialized:
            return
        if not state.is_world_process_zero:
            return
        metadata = final_model_metadata(self._wandb, args, state)
        with tempfile.TemporaryDirectory() as folder:
            artifact = model_artifact(
                self._wandb,
                self._artifact_name(args),
                kwargs.get("model"),
                metadata=metadata,
                save_to=folder,
                processing_class=kwargs.get("processing_class"),
                args=args,
            )
            self._wandb.run.log_artifact(artifact, aliases=["final_model"])

    def on_predict(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self._wandb is None:
            return
        self._ensure_run(args, state, kwargs.get("model"))
        if state.is_world_process_zero:
            self._wandb.log(rewrite_logs(metrics or {}))
