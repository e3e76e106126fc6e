"""Throughput figures the reference reports after train / evaluate / predict."""

from __future__ import annotations

import time


def speed_metrics(
    split: str,
    start_time: float,
    num_samples: int | None = None,
    num_steps: int | None = None,
    num_tokens: int | None = None,
) -> dict[str, float]:
    """``<split>_runtime`` and, when counts are known, per-second rates.

    Args:
        split: "train", "eval", "test" or a custom metric prefix.
        start_time: ``time.time()`` taken when the stage began.
    """
    runtime = time.time() - start_time
    metrics = {f"{split}_runtime": round(runtime, 4)}
    if runtime == 0:
        return metrics
    if num_samples is not None:
        metrics[f"{split}_samples_per_second"] = round(num_samples / runtime, 3)
    if num_steps is not None:
        metrics[f"{split}_steps_per_second"] = round(num_steps / runtime, 3)
    if num_tokens is not None:
        metrics[f"{split}_tokens_per_second"] = round(num_tokens / runtime, 3)
    return metrics
