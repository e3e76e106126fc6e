"""Human-readable metric tables and ``<split>_results.json`` files (log/save_metrics).

The formats follow the reference, so scripts and readers of its logs see the same
thing: memory figures in MB, runtimes as ``H:MM:SS.cc``, ``total_flos`` in GF, floats
rounded to 4 digits; the JSON files hold the raw numbers.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

ALL_RESULTS_NAME = "all_results.json"


def _seconds_text(seconds: float) -> str:
    """``1:02:03.45`` for 3723.45 seconds (hundredths kept)."""
    whole = int(seconds)
    hundredths = int(abs(seconds - whole) * 100)
    return f"{datetime.timedelta(seconds=whole)}.{hundredths:02d}"


def _format_value(key: str, value: Any) -> Any:
    if "_mem_" in key and isinstance(value, (int, float)):
        return f"{int(value) >> 20}MB"
    if "_runtime" in key and isinstance(value, (int, float)):
        return _seconds_text(value)
    if key == "total_flos" and isinstance(value, (int, float)):
        return f"{int(value) >> 30}GF"
    if isinstance(value, float):
        return round(value, 4)
    return value


def metrics_format(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``metrics`` with values made readable (see the module docstring)."""
    return {key: _format_value(key, value) for key, value in metrics.items()}


def metrics_table(split: str, metrics: Mapping[str, Any], *, formatted: bool = False) -> str:
    """The block ``log_metrics`` prints: a title, then ``key = value`` lines sorted by key.

    ``formatted=True`` says the values went through :func:`metrics_format` already.
    """
    shown = dict(metrics) if formatted else metrics_format(metrics)
    lines = [f"***** {split} metrics *****"]
    if shown:
        key_width = max(len(str(key)) for key in shown)
        value_width = max(len(str(value)) for value in shown.values())
        lines.extend(
            f"  {key: <{key_width}} = {shown[key]!s:>{value_width}}" for key in sorted(shown)
        )
    return "\n".join(lines)


def _json_value(value: Any) -> Any:
    """JSON's stand-in for an array, tensor or NumPy number among the metrics (a metric
    such as a confusion matrix is written as nested lists)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and type(value).__module__.partition(".")[0] in ("numpy", "torch"):
        return tolist()
    raise TypeError(
        f"save_metrics cannot write a {type(value).__name__} as JSON: metrics must be "
        "numbers, strings, lists or arrays."
    )


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file, so readers never see half.

    The text is built before the file is opened: a value JSON cannot hold fails
    without leaving a partial file behind.
    """
    text = json.dumps(data, indent=4, sort_keys=True, default=_json_value)
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(staging, path)


def save_metrics_files(
    output_dir: str, split: str, metrics: Mapping[str, Any], combined: bool = True
) -> str:
    """Write ``<split>_results.json`` and, if ``combined``, merge into ``all_results.json``.

    Returns:
        The path of the split's file.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f"{split}_results.json")
    _write_json(path, metrics)
    if combined:
        all_path = os.path.join(output_dir, ALL_RESULTS_NAME)
        merged: dict[str, Any] = {}
        if os.path.exists(all_path):
            with open(all_path, encoding="utf-8") as handle:
                merged = json.load(handle)
        merged.update(metrics)
        _write_json(all_path, merged)
    return path


class MetricsReportMethods:
    """The Trainer's ``metrics_format`` / ``log_metrics`` / ``save_metrics``.

    A mixin of :class:`~trainer_loop.Trainer`, kept here beside the formats it uses so
    the facade stays small; it relies only on ``self.args`` and
    ``self.is_world_process_zero()``.
    """

    args: Any

    is_world_process_zero: Callable[[], bool]  # the Trainer's method

    def metrics_format(self, metrics: dict[str, float]) -> dict[str, Any]:
        """``metrics`` made readable: memory in MB, runtimes as H:MM:SS.cc, floats rounded."""
        return metrics_format(metrics)

    def log_metrics(self, split: str, metrics: dict[str, float]) -> None:
        """Print ``metrics`` of ``split`` as an aligned table (main process only).

        The values go through :meth:`metrics_format`, so an override of it applies.
        """
        if not self.is_world_process_zero():
            return
        formatted = self.metrics_format(metrics)
        print(metrics_table(split, formatted, formatted=True))

    def save_metrics(self, split: str, metrics: dict[str, float], combined: bool = True) -> None:
        """Write ``<split>_results.json`` into ``output_dir`` (raw numbers, main process only)
        and, with ``combined``, merge the metrics into ``all_results.json``."""
        if self.is_world_process_zero():
            save_metrics_files(self.args.output_dir, split, metrics, combined=combined)
