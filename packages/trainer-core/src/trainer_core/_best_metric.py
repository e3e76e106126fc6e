"""How ``metric_for_best_model`` is read: its key in evaluation results and its direction.

The arguments apply these rules when they are built; the loop, early stopping and the
schedules apply them again when training runs, because a script may set
``metric_for_best_model`` after construction and leave ``greater_is_better`` unset.
"""

from __future__ import annotations

__all__ = ["best_metric_greater_is_better", "best_metric_key"]


def best_metric_key(metric_for_best_model: str) -> str:
    """The key the metric has in evaluation results, which carry an ``eval_`` prefix
    (``"accuracy"`` and ``"eval_accuracy"`` both name ``eval_accuracy``)."""
    if metric_for_best_model.startswith("eval_"):
        return metric_for_best_model
    return f"eval_{metric_for_best_model}"


def best_metric_greater_is_better(
    metric_for_best_model: str, greater_is_better: bool | None
) -> bool:
    """``greater_is_better`` when given; otherwise a metric named like a loss
    (``loss``, ``eval_mlm_loss``) is minimised and any other maximised, as the reference
    decides it."""
    if greater_is_better is not None:
        return bool(greater_is_better)
    return not metric_for_best_model.endswith("loss")
