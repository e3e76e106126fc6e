"""Training-loss bookkeeping that stays on the device until a logging step.

The reference adds every step's loss into a device tensor and checks it for NaN/inf on
the host each step; both cost time on small models. Here a step only appends the
detached loss tensor to a list (no kernel launch, no synchronisation); the host sees
the values when a log is due, all at once.
"""

from __future__ import annotations

import torch


class LossTracker:
    """Collects per-step losses; reports their mean at logging time and the run's total."""

    def __init__(self, *, filter_nan_inf: bool) -> None:
        self._filter_nan_inf = filter_nan_inf
        self._pending: list[torch.Tensor] = []
        self._steps_pending = 0
        self.total = 0.0
        """Sum of every logged step loss (used for ``train_loss``)."""

    _COMPACT_AFTER = 1024

    def add_micro_step(self, loss: torch.Tensor) -> None:
        """Record the (already accumulation-scaled) loss of one micro-batch."""
        self._pending.append(loss)
        if len(self._pending) > self._COMPACT_AFTER:
            # Runs without logging would otherwise hold one tensor per step forever.
            self._pending = [self._window_sum()]

    def _window_sum(self) -> torch.Tensor:
        losses = torch.stack([loss.float().reshape(()) for loss in self._pending])
        if self._filter_nan_inf:
            finite = torch.isfinite(losses)
            fallback = torch.where(finite, losses, 0.0).sum() / finite.sum().clamp(min=1)
            losses = torch.where(finite, losses, fallback)
        return losses.sum()

    def end_optimizer_step(self) -> None:
        """Mark the end of one optimizer step (one logged 'step' of loss)."""
        self._steps_pending += 1

    @property
    def steps_pending(self) -> int:
        """Optimizer steps recorded since the last :meth:`flush`."""
        return self._steps_pending

    def flush(self, reduce: object | None = None) -> float:
        """Return the mean loss per optimizer step since the last flush, and reset.

        Args:
            reduce: optional callable averaging a tensor across processes.

        With ``logging_nan_inf_filter``, a non-finite micro-batch loss is replaced by the
        mean of the finite ones in the same window, as the reference's filter intends
        (skip the bad value without skewing the average).
        """
        if not self._pending:
            return 0.0
        window_sum = self._window_sum()
        if reduce is not None:
            window_sum = reduce(window_sum)  # type: ignore[operator]  # a runtime.reduce
        value = float(window_sum.item())
        steps = max(self._steps_pending, 1)
        self.total += value
        self._pending.clear()
        self._steps_pending = 0
        return value / steps
