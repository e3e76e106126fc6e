"""The names of ``transformers.trainer_callback``, at the same path under ``trainer``.

A callback module written for the reference (``from transformers.trainer_callback import
TrainerCallback, TrainerControl, TrainerState``) keeps working with ``trainer`` in place
of ``transformers``. Torch-free, like ``trainer_core``.
"""

from __future__ import annotations

from trainer_core import (
    CallbackHandler,
    DefaultFlowCallback,
    EarlyStoppingCallback,
    ExportableState,
    PrinterCallback,
    ProgressCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)

__all__ = [
    "CallbackHandler",
    "DefaultFlowCallback",
    "EarlyStoppingCallback",
    "ExportableState",
    "PrinterCallback",
    "ProgressCallback",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
]
