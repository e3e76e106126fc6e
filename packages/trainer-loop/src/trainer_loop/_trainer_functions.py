"""``log_metrics``, ``metrics_format``, ``save_metrics`` and ``save_state`` as functions.

The reference defines these Trainer methods as functions of ``trainer_pt_utils`` taking
the trainer as ``self``, and some code calls or binds them from there
(``log_metrics(trainer, "eval", metrics)``, or a class body assigning them). They need
of ``self`` only what the reference's do: ``is_world_process_zero()``, ``args.output_dir``
and ``state``. The Trainer's own methods (``trainer_loop._metrics_report``) share the
formats with them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from trainer_checkpoint import TRAINER_STATE_NAME
from trainer_loop._metrics_report import metrics_format as _format
from trainer_loop._metrics_report import metrics_table, save_metrics_files


def metrics_format(self: Any, metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``metrics`` made readable: memory in MB, runtimes as H:MM:SS.cc, FLOs in
    GF, floats rounded to 4 digits.

    Takes both forms the reference had: ``metrics_format(self, metrics)`` (v4, the
    Trainer method) and ``metrics_format(metrics)`` (v5, a plain function).
    """
    return _format(self if metrics is None else metrics)


def log_metrics(self: Any, split: str, metrics: Mapping[str, Any]) -> None:
    """Print ``metrics`` of ``split`` as an aligned ``key = value`` table, on the main
    process only (see ``Trainer.log_metrics`` for what the memory figures mean)."""
    if self.is_world_process_zero():
        print(metrics_table(split, metrics))


def save_metrics(self: Any, split: str, metrics: Mapping[str, Any], combined: bool = True) -> None:
    """Write ``metrics`` (raw numbers) to ``<output_dir>/<split>_results.json`` on the main
    process; with ``combined``, merge them into ``all_results.json`` too."""
    if self.is_world_process_zero():
        save_metrics_files(self.args.output_dir, split, metrics, combined=combined)


def save_state(self: Any) -> None:
    """Write ``self.state`` to ``<output_dir>/trainer_state.json`` on the main process.

    ``save_model`` writes only the model (and tokenizer); scripts call this after
    training to keep the log history and best checkpoint beside it.
    """
    if self.is_world_process_zero():
        os.makedirs(self.args.output_dir, exist_ok=True)
        self.state.save_to_json(os.path.join(self.args.output_dir, TRAINER_STATE_NAME))
