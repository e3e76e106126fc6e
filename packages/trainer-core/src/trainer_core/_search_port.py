"""The search-backend port: how ``Trainer.hyperparameter_search`` drives optuna, Ray Tune
or SigOpt without importing any of them.

The loop owns training: it applies a trial's values to its arguments, trains, evaluates
and computes the objective. A backend owns the search: it creates trials, runs the
trainer once per trial and picks the best. The two meet in two small protocols:
:class:`SearchBackend` (what the loop calls) and :class:`TrainerLike` (what a backend may
use of a trainer), so that either side can be replaced and a backend can be tested with
a small fake trainer instead of a model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from trainer_core._outputs import BestRun


@runtime_checkable
class TrainerLike(Protocol):
    """What a search backend needs of a trainer.

    Contract: :meth:`train` with ``trial`` runs one whole trial; it first asks the
    backend for the trial's values (:meth:`SearchBackend.hyperparameters`) and applies
    them to ``args``; while it runs the trainer calls the backend's
    :meth:`SearchBackend.report` after each evaluation and leaves the last objective in
    :attr:`objective`, which it sets to ``None`` when a trial's :meth:`train` starts.
    When it is still ``None`` afterwards (no evaluation during training) the backend
    calls :meth:`evaluate` and :attr:`compute_objective`. A backend that also clears it
    before each :meth:`train` (the built-in ones do) stays correct with trainers that
    predate the clearing.
    ``hp_space``, ``compute_objective`` and ``hp_name`` are set by
    ``hyperparameter_search`` before the backend runs.

    Under several processes (``torchrun``), a backend also reads ``trainer.runtime`` (a
    :class:`~trainer_core.Runtime`; not a member here, so that single-process fakes need
    none): its process roles, and its ``broadcast_object`` to send each trial from the
    main process, which runs the search, to the others, which train it too.
    """

    args: Any
    state: Any
    control: Any
    callback_handler: Any
    objective: float | list[float] | None
    hp_space: Callable[[Any], Any]
    compute_objective: Callable[[dict[str, float]], float | list[float]]
    hp_name: Callable[[Any], str] | None

    def train(self, resume_from_checkpoint: str | bool | None = None, trial: Any = None) -> Any:
        """Train once with the trial's hyperparameters."""

    def evaluate(self) -> dict[str, float]:
        """Evaluate the current model; return the metrics."""

    def _tune_save_checkpoint(self, checkpoint_dir: str) -> None:
        """Write a resumable ``checkpoint-<step>`` into ``checkpoint_dir`` (Ray Tune)."""


@runtime_checkable
class SearchBackend(Protocol):
    """One hyperparameter-search library, as the loop sees it.

    Contract, for every implementation:

    * :attr:`name` is the string users pass as ``backend`` (``"optuna"``) and the name
      it is registered under in the ``trainer.hp_search_backends`` entry-point group; the
      entry point names the class, which the loop instantiates with no arguments.
    * ``trial`` is whatever object the backend passes to ``trainer.train(trial=...)``;
      the trainer hands it back to :meth:`hyperparameters`, :meth:`trial_params`,
      :meth:`trial_id`, :meth:`report`, to ``hp_space`` and to ``model_init``.
      :meth:`hyperparameters` may be called more than once per trial and returns the
      same values each time.
    * :meth:`is_available` only looks (it never raises); :meth:`ensure_available` raises
      :class:`~trainer_core.MissingExtraError` naming the install command.
    * :meth:`run` runs ``n_trials`` trials through ``trainer.train(trial=...)`` and
      returns the best as a :class:`~trainer_core.BestRun`, or a list of them when
      ``direction`` is a list (multi-objective search).
    * :meth:`hyperparameters` returns the values a trial asks for (the keys are
      ``TrainingArguments`` fields); :meth:`trial_params` what the trial records (the
      trainer state's ``trial_params``); :meth:`trial_id` the id that names its run
      folder (``run-<id>``).
    * :meth:`report` receives each in-training evaluation's objective; it may end the
      trial early by raising the library's own exception (optuna's ``TrialPruned``).
    * An instance is picklable: Ray Tune ships the trainer, and the backend it holds,
      to its workers.
    * Under several processes, :meth:`run` is called on every process and returns the
      same result on each, or raises a clear error if the library cannot search so.
    """

    name: str

    def is_available(self) -> bool:
        """Whether the library is installed."""

    def ensure_available(self) -> None:
        """Raise ``MissingExtraError`` when the library is not installed."""

    def default_hp_space(self, trial: Any) -> Any:
        """The search space used when the user gives none."""

    def run(
        self, trainer: TrainerLike, n_trials: int, direction: str | list[str], **kwargs: Any
    ) -> BestRun | list[BestRun]:
        """Run the search; return the best run (or runs, for several directions)."""

    def hyperparameters(self, trainer: TrainerLike, trial: Any) -> dict[str, Any]:
        """The values ``trial`` asks for, to be applied to ``trainer.args``."""

    def trial_params(self, trial: Any) -> dict[str, Any]:
        """The hyperparameters ``trial`` records."""

    def trial_id(self, trial: Any) -> str:
        """The id of ``trial``: its run folder is ``run-<id>``."""

    def report(
        self, trainer: TrainerLike, trial: Any, step: int, metrics: dict[str, float]
    ) -> None:
        """Hand one in-training evaluation (``trainer.objective`` is already set) over."""


_NOT_SUMMED = ("_runtime", "_per_second")


def default_compute_objective(metrics: dict[str, float]) -> float:
    """The objective when the user gives none: the evaluation loss when it is the only
    metric, otherwise the sum of every metric except the loss, the epoch and the speed
    metrics (which measure the machine, not the model).

    Raises:
        ValueError: when ``metrics`` holds neither a loss nor any other metric, because
            an objective of ``None`` would make every trial look alike.
    """
    rest = {
        key: value
        for key, value in metrics.items()
        if key not in ("eval_loss", "epoch") and not key.endswith(_NOT_SUMMED)
    }
    if rest:
        return sum(rest.values())
    if "eval_loss" not in metrics:
        raise ValueError(
            f"Cannot compute a search objective from metrics {sorted(metrics)}: there is no "
            "'eval_loss' and no other metric. Give an eval_dataset with labels, a "
            "compute_metrics, or hyperparameter_search(compute_objective=...)."
        )
    return metrics["eval_loss"]
