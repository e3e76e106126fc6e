"""The Ray Tune backend: trials run in Ray workers, each with its own copy of the trainer."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from typing import Any

from trainer_core import BestRun, TrainerLike
from trainer_hpsearch._common import (
    is_installed,
    refuse_several_directions,
    refuse_several_processes,
    require,
)
from trainer_hpsearch._pickling import check_picklable
from trainer_hpsearch._spaces import default_hp_space_ray

logger = logging.getLogger(__name__)

# Schedulers that decide from intermediate results: without evaluation during training
# they would see one result per trial and could neither stop nor exploit anything.
_INTERMEDIATE_SCHEDULERS = (
    "ASHAScheduler",
    "AsyncHyperBandScheduler",
    "HyperBandScheduler",
    "HyperBandForBOHB",
    "MedianStoppingRule",
    "PopulationBasedTraining",
)


class RayTuneBackend:
    """Search with Ray Tune (``backend="ray"``).

    Extra keyword arguments go to ``ray.tune.run`` (``scheduler``, ``search_alg``,
    ``storage_path``, ``resources_per_trial``, ...). Differences from calling Tune
    yourself: a local Ray cluster is started when none is running (and shut down
    afterwards; a cluster the caller started is left alone), ``resources_per_trial``
    defaults to one CPU (and one GPU when training uses one), results are stored under
    ``<output_dir>/ray_results`` unless ``storage_path`` says otherwise, and
    ``keep_checkpoints_num=N`` (the reference's spelling) keeps N checkpoints and makes
    each trial save one at every evaluation, as a population-based scheduler needs.
    """

    name = "ray"

    def __init__(self) -> None:
        self.checkpoint_each_evaluation = False

    def is_available(self) -> bool:
        return is_installed("ray") and is_installed("ray.tune")

    def ensure_available(self) -> None:
        require("ray.tune", self.name)

    def default_hp_space(self, trial: Any) -> dict[str, Any]:
        return default_hp_space_ray(trial)

    def run(
        self, trainer: TrainerLike, n_trials: int, direction: str | list[str], **kwargs: Any
    ) -> BestRun:
        """Start Ray if needed, run ``n_trials`` trials with ``tune.run``, return the best."""
        refuse_several_processes(trainer, self.name)
        ray = require("ray", self.name)
        tune = require("ray.tune", self.name)
        mode = refuse_several_directions(direction, self.name)[:3]
        kwargs = self._tune_options(trainer, kwargs)
        model = getattr(trainer, "model", None)
        trainer.model = None  # each trial builds its own with model_init
        started = False
        try:
            check_picklable(trainer)
            started = not ray.is_initialized()
            if started:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False)
            trainable = tune.with_parameters(_objective, local_trainer=trainer)
            analysis = tune.run(
                trainable, config=trainer.hp_space(None), num_samples=n_trials, **kwargs
            )
        finally:
            trainer.model = model
            if started:
                ray.shutdown()
        # Which of a trial's reports ranks it: "last", "all", "last-5-avg", ... (Ray's
        # scope names); TrainingArguments.ray_scope, "last" by default.
        scope = getattr(trainer.args, "ray_scope", None) or "last"
        best = analysis.get_best_trial(metric="objective", mode=mode, scope=scope)
        return BestRun(best.trial_id, best.last_result["objective"], dict(best.config), analysis)

    def _tune_options(self, trainer: TrainerLike, kwargs: dict[str, Any]) -> dict[str, Any]:
        tune = require("ray.tune", self.name)
        kwargs = dict(kwargs)
        if "resources_per_trial" not in kwargs:
            kwargs["resources_per_trial"] = default_trial_resources(trainer.args)
        kwargs.setdefault("progress_reporter", tune.CLIReporter(metric_columns=["objective"]))
        default_storage = os.path.join(trainer.args.output_dir, "ray_results")
        kwargs["storage_path"] = os.path.abspath(kwargs.get("storage_path") or default_storage)
        keep = kwargs.pop("keep_checkpoints_num", None)
        if keep:
            config = kwargs.get("checkpoint_config") or tune.CheckpointConfig()
            config.num_to_keep = keep
            kwargs["checkpoint_config"] = config
            self.checkpoint_each_evaluation = True
        scheduler = kwargs.get("scheduler")
        if scheduler is not None:
            self._check_scheduler(trainer, scheduler)
        return kwargs

    def _check_scheduler(self, trainer: TrainerLike, scheduler: Any) -> None:
        kind = type(scheduler).__name__
        if kind == "PopulationBasedTraining":
            self.checkpoint_each_evaluation = True  # exploiting a trial restores its checkpoint
        strategy = getattr(trainer.args.eval_strategy, "value", trainer.args.eval_strategy)
        if kind in _INTERMEDIATE_SCHEDULERS and strategy == "no":
            raise RuntimeError(
                f"The Ray Tune scheduler {kind} decides from results reported during training, "
                "but evaluation during training is off (eval_strategy='no'). Set "
                "eval_strategy='steps' or 'epoch' in TrainingArguments, or use another scheduler."
            )

    def hyperparameters(self, trainer: TrainerLike, trial: Any) -> dict[str, Any]:
        """Ray hands the sampled config itself; a W&B entry Ray's integration adds is no
        training argument."""
        return {key: value for key, value in trial.items() if key != "wandb"}

    def trial_params(self, trial: Any) -> dict[str, Any]:
        return self.hyperparameters(None, trial)  # type: ignore[arg-type]  # trainer unused

    def trial_id(self, trial: Any) -> str:
        tune = require("ray.tune", self.name)
        return str(tune.get_context().get_trial_id())

    def report(
        self, trainer: TrainerLike, trial: Any, step: int, metrics: dict[str, float]
    ) -> None:
        """Report the metrics and the objective to Tune, with a checkpoint when the trainer
        saves at this step or the search needs one at every evaluation."""
        tune = require("ray.tune", self.name)
        result = {**metrics, "objective": trainer.objective}
        save = self.checkpoint_each_evaluation or trainer.control.should_save
        _report(tune, trainer, result, with_checkpoint=save)


def _report(
    tune: Any, trainer: TrainerLike, result: dict[str, Any], *, with_checkpoint: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = None
        if with_checkpoint:
            trainer._tune_save_checkpoint(folder)
            checkpoint = tune.Checkpoint.from_directory(folder)
        tune.report(result, checkpoint=checkpoint)


def _objective(config: dict[str, Any], local_trainer: TrainerLike) -> None:
    """One Tune trial, in a Ray worker: resume from Tune's checkpoint when it restores
    one (a population-based scheduler exploiting another trial), train, and report a
    final result when training never evaluated.

    Tune names the experiment folder after this function (``_objective_<date>`` under
    ``ray_results``), the name the reference's trials have too, so scripts that look
    for their results there find them."""
    tune = require("ray.tune", "ray")
    local_trainer.objective = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        local_trainer.train(trial=config)
    else:
        with checkpoint.as_directory() as folder:
            found = glob.glob(os.path.join(folder, "checkpoint-*"))
            latest = max(found, key=_step_of, default=None)  # checkpoint-10 after -9
            local_trainer.train(resume_from_checkpoint=latest, trial=config)
    if local_trainer.objective is None:  # never evaluated during training: Tune has no result
        metrics = local_trainer.evaluate()
        local_trainer.objective = local_trainer.compute_objective(metrics)
        result = {**metrics, "objective": local_trainer.objective, "done": True}
        _report(tune, local_trainer, result, with_checkpoint=True)


def _step_of(checkpoint: str) -> int:
    suffix = os.path.basename(checkpoint).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def default_trial_resources(args: Any) -> dict[str, int]:
    """What each trial reserves when the caller names no ``resources_per_trial``: a CPU,
    and a GPU when the arguments train on any.

    Ray hides from a trial every GPU it did not reserve (``CUDA_VISIBLE_DEVICES``), so
    reserving none would train every trial of a GPU machine on its CPU.
    """
    resources = {"cpu": 1}
    if getattr(args, "n_gpu", 0) > 0:
        resources["gpu"] = 1
    return resources
