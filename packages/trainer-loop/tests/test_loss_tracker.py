"""Loss bookkeeping: means per optimizer step, NaN/inf filtering, bounded memory."""

from __future__ import annotations

import math

import pytest
import torch

from trainer_loop._loss_tracker import LossTracker


def _feed(tracker: LossTracker, steps: list[list[float]]) -> None:
    for micro_losses in steps:
        for loss in micro_losses:
            tracker.add_micro_step(torch.tensor(loss))
        tracker.end_optimizer_step()


def test_flush_returns_mean_loss_per_optimizer_step() -> None:
    tracker = LossTracker(filter_nan_inf=True)
    _feed(tracker, [[0.5, 0.5], [1.0, 1.0]])  # accumulation-scaled halves
    assert tracker.flush() == pytest.approx(1.5)
    assert tracker.total == pytest.approx(3.0)
    assert tracker.flush() == 0.0


def test_non_finite_losses_are_replaced_by_the_window_mean_when_filtering() -> None:
    tracker = LossTracker(filter_nan_inf=True)
    _feed(tracker, [[1.0], [float("nan")], [3.0], [float("inf")]])
    assert tracker.flush() == pytest.approx(2.0)


def test_without_filter_nan_propagates() -> None:
    tracker = LossTracker(filter_nan_inf=False)
    _feed(tracker, [[1.0], [float("nan")]])
    assert math.isnan(tracker.flush())


def test_long_runs_without_logging_keep_a_bounded_list() -> None:
    tracker = LossTracker(filter_nan_inf=True)
    _feed(tracker, [[1.0]] * 5000)
    assert len(tracker._pending) <= LossTracker._COMPACT_AFTER + 1
    assert tracker.flush() == pytest.approx(1.0)


def test_reduce_is_applied_to_the_window_sum() -> None:
    tracker = LossTracker(filter_nan_inf=False)
    _feed(tracker, [[2.0]])
    assert tracker.flush(reduce=lambda t: t * 0.5) == pytest.approx(1.0)
