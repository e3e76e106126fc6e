"""Output containers: tuple behaviour users of the reference rely on."""

from __future__ import annotations

import pytest

from trainer_core import (
    BestRun,
    EvalLoopOutput,
    EvalPrediction,
    HPSearchBackend,
    PredictionOutput,
    TrainOutput,
)


def test_eval_prediction_unpacks_as_predictions_and_labels() -> None:
    prediction = EvalPrediction(predictions=[0.1, 0.9], label_ids=[1])
    logits, labels = prediction
    assert (logits, labels) == ([0.1, 0.9], [1])
    assert len(prediction) == 2
    assert prediction[0] is prediction.predictions and prediction[-1] is prediction.label_ids
    assert prediction.inputs is None and prediction.losses is None


def test_eval_prediction_with_inputs_has_three_items() -> None:
    predictions, labels, inputs = EvalPrediction("p", "l", inputs="i")
    assert (predictions, labels, inputs) == ("p", "l", "i")


def test_eval_prediction_with_losses_only_puts_them_third() -> None:
    assert tuple(EvalPrediction("p", "l", losses="x")) == ("p", "l", "x")


def test_eval_prediction_with_everything_has_four_items() -> None:
    prediction = EvalPrediction("p", "l", inputs="i", losses="x")
    assert tuple(prediction) == ("p", "l", "i", "x")
    assert prediction.elements == ("p", "l", "i", "x")  # transformers 5's attribute
    assert prediction[1:3] == ("l", "i")


def test_eval_prediction_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        EvalPrediction("p", "l")[2]


def test_eval_prediction_tracks_attribute_changes_and_shows_set_fields() -> None:
    prediction = EvalPrediction("p", None)
    prediction.inputs = "i"
    assert tuple(prediction) == ("p", None, "i")
    assert repr(prediction) == "EvalPrediction(predictions='p', label_ids=None, inputs='i')"


def test_named_tuples_have_the_reference_fields_and_order() -> None:
    assert EvalLoopOutput._fields == ("predictions", "label_ids", "metrics", "num_samples")
    assert PredictionOutput._fields == ("predictions", "label_ids", "metrics")
    assert TrainOutput._fields == ("global_step", "training_loss", "metrics")
    assert BestRun._fields == ("run_id", "objective", "hyperparameters", "run_summary")
    step, loss, metrics = TrainOutput(10, 0.5, {"train_runtime": 1.0})
    assert (step, loss, metrics) == (10, 0.5, {"train_runtime": 1.0})
    assert PredictionOutput("p", None, {}).label_ids is None


def test_best_run_summary_is_optional() -> None:
    run = BestRun("3", 0.25, {"learning_rate": 1e-3})
    assert run.run_summary is None
    assert BestRun("3", [0.1, 0.2], {}, run_summary="s").objective == [0.1, 0.2]


def test_hp_search_backend_names() -> None:
    assert [backend.value for backend in HPSearchBackend] == ["optuna", "ray", "sigopt", "wandb"]
    assert HPSearchBackend("optuna") is HPSearchBackend.OPTUNA
    assert HPSearchBackend.RAY == "ray" and str(HPSearchBackend.RAY) == "ray"
