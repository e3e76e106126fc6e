"""Reporters as callbacks: TensorBoard, Weights & Biases, MLflow and the Hub."""

from __future__ import annotations

__all__: list[str] = []
