"""EarlyStoppingCallback: patience, threshold, direction and configuration checks."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from trainer_core import (
    CallbackHandler,
    DefaultFlowCallback,
    EarlyStoppingCallback,
    TrainerControl,
    TrainerState,
)


def make_args(**overrides: Any) -> SimpleNamespace:
    values = {
        "metric_for_best_model": "loss",
        "greater_is_better": False,
        "eval_strategy": "steps",
        "load_best_model_at_end": True,
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def run_evaluations(
    callback: EarlyStoppingCallback, args: SimpleNamespace, values: list[float]
) -> int | None:
    """Evaluate ``values`` in turn; return the 1-based evaluation that stopped training.

    As the loop does, the best metric is updated after the callbacks have seen an
    evaluation.
    """
    handler = CallbackHandler([DefaultFlowCallback, callback])
    state = TrainerState()
    control = handler.on_train_begin(args, state, TrainerControl())
    key = args.metric_for_best_model
    key = key if key.startswith("eval_") else f"eval_{key}"
    greater = args.greater_is_better
    if greater is None:
        greater = not args.metric_for_best_model.endswith("loss")
    better = (lambda a, b: a > b) if greater else (lambda a, b: a < b)
    for number, value in enumerate(values, start=1):
        control = handler.on_evaluate(args, state, control, {key: value})
        if state.best_metric is None or better(value, state.best_metric):
            state.best_metric = value
        if control.should_training_stop:
            return number
    return None


def test_stops_after_patience_evaluations_without_improvement() -> None:
    callback = EarlyStoppingCallback(early_stopping_patience=2)
    assert run_evaluations(callback, make_args(), [1.0, 0.9, 0.95, 0.97, 0.5]) == 4


def test_an_improvement_resets_the_count() -> None:
    callback = EarlyStoppingCallback(early_stopping_patience=2)
    stopped = run_evaluations(callback, make_args(), [1.0, 1.1, 0.9, 1.2, 0.8, 0.85, 0.86])
    assert stopped == 7


def test_default_patience_stops_at_the_first_bad_evaluation() -> None:
    assert run_evaluations(EarlyStoppingCallback(), make_args(), [1.0, 1.0]) == 2


def test_improvements_within_the_threshold_do_not_count() -> None:
    callback = EarlyStoppingCallback(early_stopping_patience=2, early_stopping_threshold=0.1)
    assert run_evaluations(callback, make_args(), [1.0, 0.95, 0.91]) == 3


def test_greater_is_better_metrics() -> None:
    args = make_args(metric_for_best_model="eval_accuracy", greater_is_better=True)
    callback = EarlyStoppingCallback(early_stopping_patience=1)
    assert run_evaluations(callback, args, [0.5, 0.6, 0.7, 0.65]) == 4


def test_direction_defaults_from_the_metric_name_when_unset() -> None:
    args = make_args(metric_for_best_model="accuracy", greater_is_better=None)
    assert run_evaluations(EarlyStoppingCallback(), args, [0.5, 0.6, 0.55]) == 3
    args = make_args(metric_for_best_model="eval_loss", greater_is_better=None)
    assert run_evaluations(EarlyStoppingCallback(), args, [0.5, 0.4, 0.45]) == 3


@pytest.mark.parametrize("metric", ["mlm_loss", "eval_ce_loss"])
def test_any_metric_named_like_a_loss_is_minimised_when_unset(metric: str) -> None:
    """As the arguments decide it at construction: a name ending in "loss" is a loss."""
    args = make_args(metric_for_best_model=metric, greater_is_better=None)
    assert run_evaluations(EarlyStoppingCallback(), args, [0.5, 0.4, 0.45]) == 3


def test_missing_metric_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    callback = EarlyStoppingCallback()
    control = TrainerControl()
    with caplog.at_level(logging.WARNING, logger="trainer_core._early_stopping"):
        callback.on_evaluate(
            make_args(), TrainerState(best_metric=0.1), control, metrics={"eval_acc": 1.0}
        )
    assert "eval_loss" in caplog.text and "eval_acc" in caplog.text
    assert callback.early_stopping_patience_counter == 0
    assert not control.should_training_stop


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric_for_best_model": None}, "metric_for_best_model is not set"),
        ({"eval_strategy": "no"}, 'evaluation strategy is "no"'),
    ],
)
def test_misconfiguration_raises_at_train_begin(overrides: dict[str, Any], message: str) -> None:
    handler = CallbackHandler([DefaultFlowCallback, EarlyStoppingCallback])
    with pytest.raises(ValueError, match=message):
        handler.on_train_begin(make_args(**overrides), TrainerState(), TrainerControl())


def test_all_problems_are_reported_together() -> None:
    args = SimpleNamespace(evaluation_strategy="no")
    with pytest.raises(ValueError) as caught:
        EarlyStoppingCallback().on_train_begin(args, TrainerState(), TrainerControl())
    text = str(caught.value)
    assert "metric_for_best_model" in text and "eval_strategy" in text


def test_without_loading_the_best_model_it_warns_and_still_stops(caplog) -> None:
    """transformers 5 warns here (v4.34 asserted): the loop tracks the best metric anyway."""
    args = make_args(load_best_model_at_end=False)
    callback = EarlyStoppingCallback(early_stopping_patience=1)
    control = TrainerControl()
    callback.on_train_begin(args, TrainerState(), control)
    assert "load_best_model_at_end=True" in caplog.text
    callback.on_evaluate(args, TrainerState(best_metric=0.1), control, metrics={"eval_loss": 0.5})
    assert control.should_training_stop


def test_old_spelling_of_the_evaluation_strategy_is_accepted() -> None:
    args = make_args(evaluation_strategy="epoch")
    del args.eval_strategy
    EarlyStoppingCallback().on_train_begin(args, TrainerState(), TrainerControl())


def test_patience_count_survives_a_checkpoint(tmp_path: Path) -> None:
    callback = EarlyStoppingCallback(early_stopping_patience=3, early_stopping_threshold=0.01)
    run_evaluations(callback, make_args(), [1.0, 1.5, 1.6])
    assert callback.early_stopping_patience_counter == 2
    path = tmp_path / "trainer_state.json"
    TrainerState(stateful_callbacks=[callback]).save_to_json(path)
    saved = TrainerState.load_from_json(path).stateful_callbacks["EarlyStoppingCallback"]
    restored = EarlyStoppingCallback.from_state(saved)
    assert restored.early_stopping_patience == 3
    assert restored.early_stopping_threshold == 0.01
    assert restored.early_stopping_patience_counter == 2
