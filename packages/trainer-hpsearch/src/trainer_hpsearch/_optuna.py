"""The optuna backend: one study, one ``trainer.train`` per trial, pruning at each
in-training evaluation."""

from __future__ import annotations

from typing import Any

from trainer_core import BestRun, TrainerLike
from trainer_hpsearch._common import is_installed, refuse_several_processes, require, run_trial
from trainer_hpsearch._spaces import default_hp_space_optuna

# Keyword arguments of Study.optimize (everything else goes to optuna.create_study).
_OPTIMIZE_KWARGS = ("timeout", "n_jobs", "gc_after_trial", "catch", "callbacks")


class OptunaBackend:
    """Search with an optuna study (``backend="optuna"``).

    ``hyperparameter_search``'s extra keyword arguments go to ``optuna.create_study``
    (``sampler``, ``pruner``, ``storage``, ``study_name``, ``load_if_exists``) and to
    ``Study.optimize`` (``timeout``, ``n_jobs``, ``gc_after_trial``, ``catch``,
    ``callbacks``). A list of directions makes a multi-objective study whose Pareto
    front comes back as a list of ``BestRun``.
    """

    name = "optuna"

    def is_available(self) -> bool:
        return is_installed("optuna")

    def ensure_available(self) -> None:
        require("optuna", self.name)

    def default_hp_space(self, trial: Any) -> dict[str, Any]:
        return default_hp_space_optuna(trial)

    def run(
        self, trainer: TrainerLike, n_trials: int, direction: str | list[str], **kwargs: Any
    ) -> BestRun | list[BestRun]:
        """Create the study, run ``n_trials`` trials, return the best (or the Pareto front)."""
        optuna = require("optuna", self.name)
        refuse_several_processes(trainer, self.name)
        optimize = {key: kwargs.pop(key) for key in _OPTIMIZE_KWARGS if key in kwargs}
        several = isinstance(direction, (list, tuple))
        study = optuna.create_study(
            direction=None if several else direction,
            directions=list(direction) if several else None,
            **kwargs,
        )
        study.optimize(lambda trial: run_trial(trainer, trial), n_trials=n_trials, **optimize)
        if several:
            return [
                BestRun(str(best.number), best.values, best.params) for best in study.best_trials
            ]
        best = study.best_trial
        return BestRun(str(best.number), best.value, best.params)

    def hyperparameters(self, trainer: TrainerLike, trial: Any) -> dict[str, Any]:
        """The user's space decides the values: ``hp_space(trial)`` suggests them."""
        return dict(trainer.hp_space(trial))

    def trial_params(self, trial: Any) -> dict[str, Any]:
        return dict(trial.params)

    def trial_id(self, trial: Any) -> str:
        return str(trial.number)

    def report(
        self, trainer: TrainerLike, trial: Any, step: int, metrics: dict[str, float]
    ) -> None:
        """Report the objective to the study; end the trial when its pruner says so.

        Ending it runs ``on_train_end`` first so that callbacks close what they opened,
        then raises ``optuna.TrialPruned``, which the study records as a pruned trial.
        Multi-objective studies cannot prune, and a trial without a study (optuna's
        ``FixedTrial``) has nothing to report to.
        """
        study = getattr(trial, "study", None)
        if study is None or len(study.directions) > 1:
            return
        trial.report(trainer.objective, step)
        if trial.should_prune():
            optuna = require("optuna", self.name)
            trainer.callback_handler.on_train_end(trainer.args, trainer.state, trainer.control)
            raise optuna.TrialPruned(f"Trial {trial.number} pruned at step {step}.")
