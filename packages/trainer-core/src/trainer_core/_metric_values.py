"""Metrics as plain Python numbers, whatever array library computed them.

A ``compute_metrics`` function often returns NumPy scalars or one-element tensors; the
loggers, ``trainer_state.json`` and the best-metric comparison want floats and ints.
"""

from __future__ import annotations

import sys
from typing import Any


def denumpify_detensorize(metrics: Any) -> Any:
    """Replace NumPy scalars and one-element tensors in ``metrics`` by Python numbers.

    Lists, tuples and dicts are walked and rebuilt with their own type; any other value
    (a string, a multi-element array) is returned as it is. Neither NumPy nor torch is
    imported here: a value can only be an array of a library that is already loaded,
    so this stays usable from torch-free code.
    """
    if isinstance(metrics, (list, tuple)):
        return type(metrics)(denumpify_detensorize(value) for value in metrics)
    if isinstance(metrics, dict):
        return type(metrics)({key: denumpify_detensorize(value) for key, value in metrics.items()})
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(metrics, numpy.generic):
        return metrics.item()
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(metrics, torch.Tensor) and metrics.numel() == 1:
        return metrics.item()
    return metrics
