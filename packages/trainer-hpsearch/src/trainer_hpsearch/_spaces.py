"""The search spaces used when ``hyperparameter_search`` gets no ``hp_space``.

The ranges are the reference Trainer's, so that a search without a space explores the
same values with either implementation.
"""

from __future__ import annotations

from typing import Any

from trainer_hpsearch._common import require

_BATCH_SIZES = [4, 8, 16, 32, 64]


def default_hp_space_optuna(trial: Any) -> dict[str, Any]:
    """Learning rate (log scale), epochs, seed and batch size, suggested by an optuna trial."""
    require("optuna", "optuna")
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-6, 1e-4, log=True),
        "num_train_epochs": trial.suggest_int("num_train_epochs", 1, 5),
        "seed": trial.suggest_int("seed", 1, 40),
        "per_device_train_batch_size": trial.suggest_categorical(
            "per_device_train_batch_size", _BATCH_SIZES
        ),
    }


def default_hp_space_ray(trial: Any) -> dict[str, Any]:
    """The same space as Ray Tune sampling domains (``trial`` is unused: Ray samples)."""
    tune = require("ray.tune", "ray")
    return {
        "learning_rate": tune.loguniform(1e-6, 1e-4),
        "num_train_epochs": tune.choice(list(range(1, 6))),
        "seed": tune.uniform(1, 40),
        "per_device_train_batch_size": tune.choice(_BATCH_SIZES),
    }


def default_hp_space_sigopt(trial: Any) -> list[dict[str, Any]]:
    """The same space as SigOpt parameter definitions (categorical values are strings
    in SigOpt's API; they are turned back into numbers when applied)."""
    return [
        {
            "name": "learning_rate",
            "type": "double",
            "bounds": {"min": 1e-6, "max": 1e-4},
            "transformation": "log",
        },
        {"name": "num_train_epochs", "type": "int", "bounds": {"min": 1, "max": 6}},
        {"name": "seed", "type": "int", "bounds": {"min": 1, "max": 40}},
        {
            "name": "per_device_train_batch_size",
            "type": "categorical",
            "categorical_values": [str(size) for size in _BATCH_SIZES],
        },
    ]
