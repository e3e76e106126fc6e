"""The optuna backend: one study, one ``trainer.train`` per trial, pruning at each
in-training evaluation; under several processes the main process runs the study."""

from __future__ import annotations

from typing import Any

from trainer_core import BestRun, TrainerLike
from trainer_hpsearch._common import is_installed, require, run_trial
from trainer_hpsearch._processes import (
    SearchGroup,
    decide_on_main,
    follow,
    lead,
    offer,
    search_group,
)
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
        """Create the study, run ``n_trials`` trials, return the best (or the Pareto front).

        Under several processes the main process runs the study and the others train
        each trial it sends them (see ``_processes``); every process returns the result.
        """
        optuna = require("optuna", self.name)
        optimize = {key: kwargs.pop(key) for key in _OPTIMIZE_KWARGS if key in kwargs}
        group = search_group(trainer, self.name)
        if group is None:
            return self._search(optuna, trainer, (n_trials, direction), kwargs, optimize)
        _refuse_parallel_jobs(optimize, group.size)
        if not group.is_main:
            tolerated = (optuna.TrialPruned, *_exception_types(optimize.get("catch", ())))
            return follow(group, trainer, _fixed_trial, tolerated)
        plan = (n_trials, direction)
        return lead(group, lambda: self._search(optuna, trainer, plan, kwargs, optimize, group))

    def _search(
        self,
        optuna: Any,
        trainer: TrainerLike,
        plan: tuple[int, str | list[str]],
        create: dict[str, Any],
        optimize: dict[str, Any],
        group: SearchGroup | None = None,
    ) -> BestRun | list[BestRun]:
        """The study itself: ``plan`` is ``(n_trials, direction)``."""
        n_trials, direction = plan
        # One direction in a list is a single-objective study (one BestRun), as optuna
        # and the reference treat it.
        if isinstance(direction, (list, tuple)) and len(direction) == 1:
            direction = direction[0]
        several = isinstance(direction, (list, tuple))
        study = optuna.create_study(
            direction=None if several else direction,
            directions=list(direction) if several else None,
            **create,
        )
        study.optimize(
            lambda trial: self._run_trial(trainer, trial, group), n_trials=n_trials, **optimize
        )
        if several:
            return [
                BestRun(str(best.number), best.values, best.params) for best in study.best_trials
            ]
        best = study.best_trial
        return BestRun(str(best.number), best.value, best.params)

    def _run_trial(self, trainer: TrainerLike, trial: Any, group: SearchGroup | None) -> Any:
        """One trial; with several processes its values are sampled here first (the
        others cannot ask the study) and sent to them."""
        if group is not None:
            self.hyperparameters(trainer, trial)  # samples: trial.params now holds them
            offer(group, {"id": trial.number, "params": dict(trial.params)})
        return run_trial(trainer, trial)

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
        Under several processes the main process decides and every process ends the
        trial at the same step. Multi-objective studies cannot prune, and a trial
        without a study (optuna's ``FixedTrial``) has nothing to report to.
        """
        group = search_group(trainer, self.name)
        if decide_on_main(group, lambda: _should_prune(trial, step, trainer.objective)):
            optuna = require("optuna", self.name)
            trainer.callback_handler.on_train_end(trainer.args, trainer.state, trainer.control)
            raise optuna.TrialPruned(f"Trial {self.trial_id(trial)} pruned at step {step}.")


def _should_prune(trial: Any, step: int, objective: Any) -> bool:
    """Report ``objective`` to the trial's study; whether its pruner ends the trial."""
    study = getattr(trial, "study", None)
    if study is None or len(study.directions) > 1:
        return False
    trial.report(objective, step)
    return bool(trial.should_prune())


def _fixed_trial(payload: dict[str, Any]) -> Any:
    """The main process's trial as the other processes see it: optuna's ``FixedTrial``
    answers ``hp_space``'s and ``model_init``'s ``suggest_*`` calls with its values."""
    optuna = require("optuna", OptunaBackend.name)
    return optuna.trial.FixedTrial(payload["params"], payload["id"])


def _exception_types(catch: Any) -> tuple[type[BaseException], ...]:
    """optuna's ``catch`` (one exception type or several) as a tuple."""
    return (catch,) if isinstance(catch, type) else tuple(catch)


def _refuse_parallel_jobs(optimize: dict[str, Any], processes: int) -> None:
    """Trials run one after the other under several processes: they share one group."""
    n_jobs = optimize.get("n_jobs", 1)
    if n_jobs != 1:
        raise ValueError(
            f"n_jobs={n_jobs} runs trials in parallel threads, but the {processes} processes "
            "of this launch train each trial together, one trial at a time. Leave n_jobs=1."
        )
