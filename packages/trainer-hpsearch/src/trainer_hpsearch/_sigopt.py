"""The SigOpt backend: an offline AI Experiment whose runs each train once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer_core import BestRun, TrainerLike
from trainer_hpsearch._common import (
    is_installed,
    refuse_several_directions,
    require,
    run_trial,
)
from trainer_hpsearch._processes import SearchGroup, follow, lead, offer, search_group
from trainer_hpsearch._spaces import default_hp_space_sigopt


def _number(value: Any) -> Any:
    """SigOpt returns categorical values as strings; numeric ones become numbers again
    (``"16"`` -> 16) so that they fit the argument they are applied to."""
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


def _raw(run: Any) -> dict[str, Any]:
    """A SigOpt run's assignments as a plain (picklable) dict."""
    return dict(run.assignments.items())


@dataclass(frozen=True)
class SharedRun:
    """A SigOpt run as the processes other than the main one see it: its id and
    assignments, the two things the trainer reads of a run."""

    id: str
    assignments: dict[str, Any]

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> SharedRun:
        return cls(str(payload["id"]), dict(payload["assignments"]))


class SigOptBackend:
    """Search with SigOpt (``backend="sigopt"``, the sigopt>=8 client).

    The client reads its token and server from ``SIGOPT_API_TOKEN`` /
    ``SIGOPT_API_URL`` (or its config file). Extra keyword arguments: ``project``
    (default ``"huggingface"``, as the reference) and ``name`` (default
    ``"huggingface-tune"``); the rest go to ``sigopt.create_experiment``.
    """

    name = "sigopt"

    def is_available(self) -> bool:
        return is_installed("sigopt")

    def ensure_available(self) -> None:
        require("sigopt", self.name)

    def default_hp_space(self, trial: Any) -> list[dict[str, Any]]:
        return default_hp_space_sigopt(trial)

    def run(
        self, trainer: TrainerLike, n_trials: int, direction: str | list[str], **kwargs: Any
    ) -> BestRun:
        """Create the experiment with a budget of ``n_trials`` runs, train once per run,
        log the objective, and return SigOpt's best run.

        Under several processes the main process drives the experiment and sends each
        run's assignments to the others (see ``_processes``); every process returns the
        best run.
        """
        sigopt = require("sigopt", self.name)
        direction = refuse_several_directions(direction, self.name)
        group = search_group(trainer, self.name)
        if group is not None and not group.is_main:
            return follow(group, trainer, SharedRun.from_payload)  # the main process's BestRun
        plan = (n_trials, direction)
        if group is None:
            return self._search(sigopt, trainer, plan, kwargs)
        return lead(group, lambda: self._search(sigopt, trainer, plan, kwargs, group))

    def _search(
        self,
        sigopt: Any,
        trainer: TrainerLike,
        plan: tuple[int, str],
        kwargs: dict[str, Any],
        group: SearchGroup | None = None,
    ) -> BestRun:
        """The experiment itself: ``plan`` is ``(n_trials, direction)``."""
        n_trials, direction = plan
        sigopt.set_project(kwargs.pop("project", "huggingface"))
        experiment = sigopt.create_experiment(
            name=kwargs.pop("name", "huggingface-tune"),
            type="offline",
            parameters=trainer.hp_space(None),
            metrics=[{"name": "objective", "objective": direction, "strategy": "optimize"}],
            parallel_bandwidth=1,
            budget=n_trials,
            **kwargs,
        )
        for run in experiment.loop():
            with run:
                if group is not None:
                    offer(group, {"id": self.trial_id(run.run), "assignments": _raw(run.run)})
                run.log_metric("objective", run_trial(trainer, run.run))
        best = next(iter(experiment.get_best_runs()), None)
        if best is None:
            raise RuntimeError(f"SigOpt experiment {experiment.id} reported no best run.")
        hyperparameters = {key: _number(value) for key, value in best.assignments.items()}
        return BestRun(str(best.id), best.values["objective"].value, hyperparameters)

    def hyperparameters(self, trainer: TrainerLike, trial: Any) -> dict[str, Any]:
        return self.trial_params(trial)

    def trial_params(self, trial: Any) -> dict[str, Any]:
        return {key: _number(value) for key, value in trial.assignments.items()}

    def trial_id(self, trial: Any) -> str:
        return str(trial.id)

    def report(
        self, trainer: TrainerLike, trial: Any, step: int, metrics: dict[str, float]
    ) -> None:
        """SigOpt takes one objective per run, logged when the run ends: nothing to do."""
