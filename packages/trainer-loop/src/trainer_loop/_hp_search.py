"""``Trainer.hyperparameter_search`` and the loop's hooks for a running search.

The search itself belongs to a backend (a ``trainer_core.SearchBackend`` plugin); this
mixin is the trainer's side of the contract: it applies a trial's values to the
arguments (and puts the previous ones back before the next trial, so no trial's values
leak into another), computes the objective at each in-training evaluation and hands it
to the backend, and names the trial's run folder.

Some arguments are read once, when the Trainer is built: the runtime takes precision
(``bf16``, ``fp16``), ``torch_compile`` and, with DeepSpeed, the values its ``"auto"``
entries are filled from (batch size, accumulation, learning rate, ...); the label
smoother takes ``label_smoothing_factor``. A trial that changes them gets them rebuilt
from its arguments, and the search's end rebuilds them from the user's again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from trainer_core import HPSearchBackend, SearchBackend, default_compute_objective
from trainer_dist import build_runtime
from trainer_loop._label_smoothing import LabelSmoother
from trainer_loop._search_backends import backend_label, resolve_backend

logger = logging.getLogger(__name__)


def _cast(old: Any, value: Any) -> Any:
    """``value`` with the type of the field it replaces, as the reference does (``"16"``
    from a categorical becomes ``16`` for an int field); booleans read from text."""
    if old is None or isinstance(value, type(old)):
        return value
    if isinstance(old, bool) and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return type(old)(value)


def apply_trial_values(
    args: Any, values: dict[str, Any], previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Set ``values`` on ``args``; return the fields' previous values (to restore).

    Keys that are no ``TrainingArguments`` field are skipped with a warning: they may be
    meant for ``model_init``, which receives the trial itself. Each old value goes into
    ``previous`` before its field is set, so that when a value is refused half way, the
    fields already set can still be put back.
    """
    previous = {} if previous is None else previous
    for key, value in values.items():
        if not hasattr(args, key):
            logger.warning(
                "Hyperparameter %r of the trial is not a TrainingArguments field: it is not "
                "applied to the arguments (model_init still receives the trial).",
                key,
            )
            continue
        old = getattr(args, key)
        previous.setdefault(key, old)
        setattr(args, key, _cast(old, value))
    return previous


class HyperparameterSearchMethods:
    """The Trainer's hyperparameter-search methods (a mixin of ``Trainer``)."""

    hp_search_backend: HPSearchBackend | str | None = None
    objective: float | list[float] | None = None
    hp_space: Callable[[Any], Any] | None = None
    compute_objective: Callable[[dict[str, float]], Any] | None = None
    _search_backend: SearchBackend | None = None
    _args_before_trial: dict[str, Any] | None = None

    def hyperparameter_search(
        self,
        hp_space: Callable[[Any], Any] | None = None,
        compute_objective: Callable[[dict[str, float]], Any] | None = None,
        n_trials: int = 20,
        direction: str | list[str] = "minimize",
        backend: str | HPSearchBackend | SearchBackend | None = None,
        hp_name: Callable[[Any], str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Search hyperparameters with optuna, Ray Tune or SigOpt; return the best run.

        Each trial builds a fresh model with ``model_init``, trains with the trial's
        values put into ``self.args`` and is scored by ``compute_objective`` (default:
        the evaluation loss, or the sum of the metrics when there are others).
        Launched on several processes (optuna, SigOpt), the main process runs the search
        and every process trains each trial and returns the same result.

        Args:
            hp_space: Builds the trial's values (default: the backend's space).
            compute_objective: Metrics -> objective.
            n_trials: How many trials to run.
            direction: ``"minimize"``, ``"maximize"``, or a list of them (optuna's
                multi-objective search).
            backend: ``"optuna"``, ``"ray"``, ``"sigopt"``, an ``HPSearchBackend``, or a
                ``SearchBackend`` object; default: the first installed of the three.
            hp_name: Names a trial (its run folder and ``state.trial_name``).
            **kwargs: Passed on to the backend (see trainer-hpsearch's README).

        Returns:
            A ``BestRun``, or a list of them for several directions.
        """
        if getattr(self, "model_init", None) is None:
            raise RuntimeError(
                "hyperparameter_search needs a `model_init` function passed to the Trainer "
                "(Trainer(model_init=...)): each trial trains a freshly built model."
            )
        search = resolve_backend(backend)
        search.ensure_available()
        self.hp_search_backend = backend_label(search)
        self._search_backend = search
        self.hp_space = search.default_hp_space if hp_space is None else hp_space
        self.hp_name = hp_name
        self.compute_objective = compute_objective or default_compute_objective
        try:
            return search.run(self, n_trials, direction, **kwargs)  # type: ignore[arg-type]  # the Trainer is TrainerLike
        finally:
            changed = self._restore_args()
            self._rebuild_from_args(changed)
            self.hp_search_backend = None
            self._search_backend = None

    def _restore_args(self) -> set[str]:
        """Put back the fields the last trial changed; return their names."""
        previous = self._args_before_trial or {}
        for key, value in previous.items():
            setattr(self.args, key, value)  # type: ignore[attr-defined]  # Trainer has args
        self._args_before_trial = None
        return set(previous)

    def _rebuild_from_args(self, changed: set[str]) -> None:
        """Rebuild what the Trainer made from the arguments at init, after ``changed``
        fields took other values (a trial's, or the user's again after the search).

        The runtime is rebuilt whenever a field changed, as the reference builds its
        accelerator again for each trial: it cannot tell which fields a DeepSpeed
        config's ``"auto"`` entries read. A runtime passed to the Trainer is the user's
        and is kept.
        """
        if not changed:
            return
        args = self.args  # type: ignore[attr-defined]  # Trainer has args
        if getattr(self, "_runtime_from_args", False):
            self.runtime = build_runtime(args)
        if "label_smoothing_factor" in changed:
            factor = args.label_smoothing_factor
            self.label_smoother = LabelSmoother(epsilon=factor) if factor > 0 else None
        if "neftune_noise_alpha" in changed:
            self.neftune_noise_alpha = args.neftune_noise_alpha
        self._train_batch_size = args.train_batch_size

    def _hp_search_setup(self, trial: Any) -> None:
        """Put a trial's values into ``self.args`` before a trial's ``train()``, and
        rebuild from them what the Trainer built from the arguments at init."""
        search = self._search_backend
        if search is None or trial is None:
            return
        self.objective = None  # a trial that never evaluates must not inherit the last score
        changed = self._restore_args()
        values = search.hyperparameters(self, trial)  # type: ignore[arg-type]  # TrainerLike
        self._args_before_trial = {}  # filled as fields are set: a refusal keeps the record
        apply_trial_values(self.args, values, self._args_before_trial)  # type: ignore[attr-defined]
        logger.info("Trial %s: %s", search.trial_id(trial), search.trial_params(trial))
        self._rebuild_from_args(changed | set(self._args_before_trial))
        self._train_batch_size = self.args.train_batch_size  # type: ignore[attr-defined]

    def _report_to_hp_search(self, trial: Any, step: int, metrics: dict[str, float]) -> None:
        """Compute the objective of an in-training evaluation and hand it to the backend
        (which may end the trial: optuna's pruning)."""
        search = self._search_backend
        if search is None or trial is None or self.compute_objective is None:
            return
        self.objective = self.compute_objective(dict(metrics))
        search.report(self, trial, step, dict(metrics))  # type: ignore[arg-type]  # TrainerLike

    def _get_output_dir(self, trial: Any) -> str:
        """Where checkpoints go: ``output_dir/run-<trial id>`` (or ``hp_name(trial)``)
        during a search, so that trials never overwrite each other's checkpoints."""
        output_dir: str = self.args.output_dir  # type: ignore[attr-defined]
        search = self._search_backend
        if search is None or trial is None:
            return output_dir
        hp_name = getattr(self, "hp_name", None)
        name = hp_name(trial) if hp_name is not None else f"run-{search.trial_id(trial)}"
        return os.path.join(output_dir, name)

    def _trial_record(self, trial: Any) -> tuple[str | None, dict[str, Any] | None]:
        """``(trial_name, trial_params)`` for the trainer state of a trial's run."""
        if trial is None:
            return None, None
        hp_name = getattr(self, "hp_name", None)
        name = hp_name(trial) if hp_name is not None else None
        search = self._search_backend
        if search is not None:
            return name, search.trial_params(trial)
        return name, _params_outside_search(trial)

    def _tune_save_checkpoint(self, checkpoint_dir: str) -> None:
        """Write a resumable ``checkpoint-<step>`` into ``checkpoint_dir`` for Ray Tune.

        The checkpoint is Tune's to keep (it copies the folder); the state's pointer to
        the best checkpoint is left on the trial's own folder.
        """
        state = self.state  # type: ignore[attr-defined]
        best = state.best_model_checkpoint
        try:
            self._checkpoints.save_checkpoint(checkpoint_dir)  # type: ignore[attr-defined]
        finally:
            state.best_model_checkpoint = best


def _params_outside_search(trial: Any) -> dict[str, Any] | None:
    """The values of a trial passed to ``train(trial=...)`` with no search running.

    Users re-train a search's best trial that way, with an optuna ``FixedTrial`` whose
    values ``model_init`` reads through ``suggest_*``; the reference records what it
    has suggested so far (``trial.params``), or a Ray-style dict as it is. Duck-typed
    so that the loop never imports optuna.
    """
    if isinstance(trial, dict):
        return dict(trial)
    params = getattr(trial, "params", None)
    return dict(params) if isinstance(params, dict) else None
