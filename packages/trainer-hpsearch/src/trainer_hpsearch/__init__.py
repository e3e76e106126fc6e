"""Hyperparameter search backends: optuna, Ray Tune and SigOpt."""

from __future__ import annotations

__all__: list[str] = []
