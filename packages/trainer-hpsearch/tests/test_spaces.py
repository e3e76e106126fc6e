"""The default search spaces have the reference's ranges."""

from __future__ import annotations

import pytest

from trainer_hpsearch import (
    default_hp_space_optuna,
    default_hp_space_ray,
    default_hp_space_sigopt,
)

optuna = pytest.importorskip("optuna")  # the package's extras (in its dev group)
tune = pytest.importorskip("ray.tune")


def test_optuna_space_suggests_the_reference_ranges() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = default_hp_space_optuna(trial)
    distributions = trial.distributions
    assert distributions["learning_rate"] == optuna.distributions.FloatDistribution(
        1e-6, 1e-4, log=True
    )
    assert distributions["num_train_epochs"] == optuna.distributions.IntDistribution(1, 5)
    assert distributions["seed"] == optuna.distributions.IntDistribution(1, 40)
    assert distributions["per_device_train_batch_size"].choices == (4, 8, 16, 32, 64)
    assert values == trial.params


def test_ray_space_samples_the_reference_ranges() -> None:
    space = default_hp_space_ray(None)
    assert isinstance(space["learning_rate"], tune.search.sample.Float)
    assert (space["learning_rate"].lower, space["learning_rate"].upper) == (1e-6, 1e-4)
    assert space["num_train_epochs"].categories == [1, 2, 3, 4, 5]
    assert (space["seed"].lower, space["seed"].upper) == (1, 40)
    assert space["per_device_train_batch_size"].categories == [4, 8, 16, 32, 64]


def test_sigopt_space_declares_the_reference_parameters() -> None:
    space = {p["name"]: p for p in default_hp_space_sigopt(None)}
    assert space["learning_rate"]["bounds"] == {"min": 1e-6, "max": 1e-4}
    assert space["learning_rate"]["transformation"] == "log"
    assert space["num_train_epochs"]["bounds"] == {"min": 1, "max": 6}
    assert space["seed"] == {"name": "seed", "type": "int", "bounds": {"min": 1, "max": 40}}
    assert space["per_device_train_batch_size"]["categorical_values"] == [
        "4",
        "8",
        "16",
        "32",
        "64",
    ]
