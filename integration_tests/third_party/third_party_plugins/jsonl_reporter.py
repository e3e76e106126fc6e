"""A reporter that appends each log to ``<output_dir>/logs.jsonl``."""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

from trainer_core import TrainerCallback, TrainerControl, TrainerState

logger = logging.getLogger(__name__)

FILE_NAME = "logs.jsonl"


class JsonLinesReporter(TrainerCallback):
    """``report_to="jsonl"``: one JSON object per log, ``{"step": ..., **logs}``."""

    name = "jsonl"

    def __init__(self) -> None:
        self._file: Any = None

    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero and self._file is None:
            os.makedirs(args.output_dir, exist_ok=True)
            self._file = open(os.path.join(args.output_dir, FILE_NAME), "a")  # noqa: SIM115

    def on_log(
        self,
        args: Any,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or self._file is None:
            return
        record: dict[str, Any] = {"step": state.global_step}
        for key, value in (logs or {}).items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                record[key] = value
            else:
                logger.warning("jsonl: skipping %s=%r, not a finite number", key, value)
        self._file.write(json.dumps(record) + "\n")

    def on_train_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
