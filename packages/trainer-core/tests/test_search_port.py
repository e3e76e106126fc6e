"""The search port: the default objective and the protocols' shape."""

from __future__ import annotations

import pytest

from trainer_core import SearchBackend, TrainerLike, default_compute_objective


def test_objective_is_the_eval_loss_when_no_other_metric() -> None:
    metrics = {"eval_loss": 0.5, "epoch": 2.0, "eval_runtime": 1.5, "eval_samples_per_second": 9.0}
    assert default_compute_objective(metrics) == 0.5


def test_objective_sums_the_metrics_other_than_loss_epoch_and_speed() -> None:
    metrics = {
        "eval_loss": 0.5,
        "eval_accuracy": 0.75,
        "eval_f1": 0.5,
        "epoch": 3.0,
        "eval_runtime": 2.0,
        "eval_steps_per_second": 4.0,
    }
    assert default_compute_objective(metrics) == 1.25


def test_objective_does_not_change_the_metrics() -> None:
    metrics = {"eval_loss": 0.5, "eval_accuracy": 0.75}
    default_compute_objective(metrics)
    assert metrics == {"eval_loss": 0.5, "eval_accuracy": 0.75}


def test_objective_without_loss_or_metric_says_what_to_give() -> None:
    with pytest.raises(ValueError, match="compute_objective"):
        default_compute_objective({"epoch": 1.0, "eval_runtime": 0.1})


class _Backend:
    name = "fake"

    def is_available(self) -> bool:
        return True

    def ensure_available(self) -> None: ...

    def default_hp_space(self, trial): ...

    def run(self, trainer, n_trials, direction, **kwargs): ...

    def hyperparameters(self, trainer, trial): ...

    def trial_params(self, trial): ...

    def trial_id(self, trial): ...

    def report(self, trainer, trial, step, metrics): ...


def test_a_class_with_the_methods_satisfies_the_backend_protocol() -> None:
    assert isinstance(_Backend(), SearchBackend)
    del _Backend.report
    assert not isinstance(_Backend(), SearchBackend)


def test_an_object_without_train_is_no_trainer() -> None:
    assert not isinstance(object(), TrainerLike)
