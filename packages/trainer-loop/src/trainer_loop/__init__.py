"""Trainer: the training, evaluation and prediction loops, optimizers and schedulers."""

from __future__ import annotations

__all__: list[str] = []
