"""Hyperparameter search backends: optuna, Ray Tune and SigOpt.

Each backend satisfies ``trainer_core.SearchBackend`` and is registered under the
``trainer.hp_search_backends`` entry-point group by the name users pass as
``Trainer.hyperparameter_search(backend=...)``. The libraries themselves are imported
only when a search runs.
"""

from __future__ import annotations

from trainer_hpsearch._optuna import OptunaBackend
from trainer_hpsearch._ray import RayTuneBackend
from trainer_hpsearch._sigopt import SigOptBackend
from trainer_hpsearch._spaces import (
    default_hp_space_optuna,
    default_hp_space_ray,
    default_hp_space_sigopt,
)

__all__ = [
    "OptunaBackend",
    "RayTuneBackend",
    "SigOptBackend",
    "default_hp_space_optuna",
    "default_hp_space_ray",
    "default_hp_space_sigopt",
]
