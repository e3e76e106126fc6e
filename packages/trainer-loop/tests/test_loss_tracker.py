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


def _finite_mean_replaces_nan(losses: list[float]) -> float:
    """The mean per step the filter should log: a NaN counts as the finite losses' mean."""
    finite = [loss for loss in losses if math.isfinite(loss)]
    mean = sum(finite) / len(finite)
    return sum(loss if math.isfinite(loss) else mean for loss in losses) / len(losses)


def test_a_nan_after_compaction_is_replaced_by_the_mean_of_each_finite_loss() -> None:
    """Compacted losses count one by one in the fallback mean, not as one summed loss."""
    steps = 2 * LossTracker._COMPACT_AFTER + 60  # compacted twice, then more
    losses = [0.25 * (step % 4) for step in range(steps)]  # exact in float32
    losses[-10] = float("nan")
    tracker = LossTracker(filter_nan_inf=True)
    _feed(tracker, [[loss] for loss in losses])
    assert tracker.flush() == pytest.approx(_finite_mean_replaces_nan(losses), rel=1e-6)


def test_a_nan_before_compaction_is_replaced_by_the_mean_too() -> None:
    losses = [0.5 + 0.25 * (step % 2) for step in range(LossTracker._COMPACT_AFTER + 40)]
    losses[3] = float("inf")
    tracker = LossTracker(filter_nan_inf=True)
    _feed(tracker, [[loss] for loss in losses])
    assert tracker.flush() == pytest.approx(_finite_mean_replaces_nan(losses), rel=1e-6)


def test_the_running_sum_counts_compacted_losses_one_by_one() -> None:
    """What a ``_maybe_log_save_evaluate`` override reads goes through the same fold."""
    losses = [1.0] * (LossTracker._COMPACT_AFTER + 5) + [float("nan"), 3.0]
    tracker = LossTracker(filter_nan_inf=True)
    _feed(tracker, [[loss] for loss in losses])
    expected = _finite_mean_replaces_nan(losses) * len(losses)
    assert tracker.running_sum("cpu").item() == pytest.approx(expected, rel=1e-6)
    assert tracker.flush() == pytest.approx(expected / len(losses), rel=1e-6)


def test_without_filter_a_nan_survives_compaction() -> None:
    tracker = LossTracker(filter_nan_inf=False)
    _feed(tracker, [[float("nan")]] + [[1.0]] * (LossTracker._COMPACT_AFTER + 5))
    assert math.isnan(tracker.flush())


@pytest.mark.parametrize("filter_nan_inf", [True, False])
def test_compaction_never_reads_a_loss_on_the_host(filter_nan_inf: bool) -> None:
    """Losses on the meta device have no value: any host read would raise."""
    tracker = LossTracker(filter_nan_inf=filter_nan_inf)
    for _ in range(2 * LossTracker._COMPACT_AFTER + 3):
        tracker.add_micro_step(torch.empty((), device="meta"))
    assert tracker.running_sum("meta").device.type == "meta"
