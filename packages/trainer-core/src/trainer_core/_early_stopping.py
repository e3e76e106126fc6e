"""Stop training once the tracked metric has stopped improving."""

from __future__ import annotations

import logging
import operator
from typing import Any

from trainer_core._best_metric import best_metric_greater_is_better, best_metric_key
from trainer_core._callbacks import TrainerCallback
from trainer_core._flow import eval_strategy_of
from trainer_core._state import ExportableState, TrainerControl, TrainerState

logger = logging.getLogger(__name__)


class EarlyStoppingCallback(TrainerCallback, ExportableState):
    """Stops training after ``early_stopping_patience`` evaluations without improvement.

    It compares each evaluation's ``metric_for_best_model`` with ``state.best_metric``,
    which the loop keeps up to date when it tracks the best model, in the direction
    ``greater_is_better`` gives. An evaluation counts as an improvement only if it beats
    the best value by more than ``early_stopping_threshold``; an improvement resets the
    count. Its count is saved with checkpoints, so a resumed run keeps its patience.

    Requires, checked when training begins: ``metric_for_best_model`` set and an
    evaluation strategy other than ``"no"``. Without ``load_best_model_at_end=True`` it
    warns (as transformers 5 does): training still stops, on the last model.

    Args:
        early_stopping_patience: Evaluations in a row without improvement that stop
            training.
        early_stopping_threshold: Amount by which the metric must beat the best value to
            count as an improvement.
    """

    def __init__(
        self, early_stopping_patience: int = 1, early_stopping_threshold: float | None = 0.0
    ) -> None:
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold
        self.early_stopping_patience_counter = 0

    def check_metric_value(
        self, args: Any, state: TrainerState, control: TrainerControl, metric_value: float
    ) -> None:
        """Reset the counter if ``metric_value`` improves on the best value, else count one."""
        greater = getattr(args, "greater_is_better", None)
        maximise = best_metric_greater_is_better(args.metric_for_best_model, greater)
        better = operator.gt if maximise else operator.lt
        threshold = self.early_stopping_threshold or 0.0
        best = state.best_metric
        if best is None or (better(metric_value, best) and abs(metric_value - best) > threshold):
            self.early_stopping_patience_counter = 0
        else:
            self.early_stopping_patience_counter += 1

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Refuse a configuration in which early stopping could never work.

        Raises:
            ValueError: naming the argument to set.
        """
        problems = _configuration_problems(args)
        if problems:
            raise ValueError(
                "EarlyStoppingCallback cannot work with these TrainingArguments: "
                + "; ".join(problems)
            )
        if not getattr(args, "load_best_model_at_end", False):
            # The best metric is tracked all the same; only the reload is missing.
            logger.warning(
                "EarlyStoppingCallback without load_best_model_at_end=True: training stops "
                "on the patience, but the model then is the last one trained, not the best; "
                "set load_best_model_at_end=True to load the best checkpoint at the end."
            )

    def on_evaluate(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Count this evaluation and request a stop once patience runs out."""
        key = best_metric_key(args.metric_for_best_model)
        value = (metrics or {}).get(key)
        if value is None:
            logger.warning(
                "EarlyStoppingCallback needs the metric %r, but this evaluation did not "
                "report it (it reported %s); early stopping skips this evaluation",
                key,
                sorted(metrics or {}),
            )
            return
        self.check_metric_value(args, state, control, value)
        if self.early_stopping_patience_counter >= self.early_stopping_patience:
            control.should_training_stop = True

    def state(self) -> dict[str, Any]:
        """Constructor arguments, and the count of evaluations without improvement."""
        return {
            "args": {
                "early_stopping_patience": self.early_stopping_patience,
                "early_stopping_threshold": self.early_stopping_threshold,
            },
            "attributes": {
                "early_stopping_patience_counter": self.early_stopping_patience_counter,
            },
        }


def _configuration_problems(args: Any) -> list[str]:
    """What ``args`` must change for early stopping to work, one sentence each."""
    problems = []
    if getattr(args, "metric_for_best_model", None) is None:
        problems.append(
            "metric_for_best_model is not set; set it to the metric to watch "
            '(e.g. metric_for_best_model="eval_loss")'
        )
    if eval_strategy_of(args) == "no":
        problems.append(
            'the evaluation strategy is "no", so no metric is ever computed; set '
            'eval_strategy (evaluation_strategy) to "steps" or "epoch"'
        )
    return problems
