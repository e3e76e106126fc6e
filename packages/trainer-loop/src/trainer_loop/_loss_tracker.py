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
        # Losses folded away by _compact: their finite sum and finite count (device
        # tensors, so folding needs no sync) and how many there were (host int).
        self._compacted: tuple[torch.Tensor, torch.Tensor] | None = None
        self._compacted_steps = 0
        self._steps_pending = 0
        self._running: torch.Tensor | None = None
        self.total = 0.0
        """Sum of every logged step loss (used for ``train_loss``)."""

    _COMPACT_AFTER = 1024

    def add_micro_step(self, loss: torch.Tensor) -> None:
        """Record the (already accumulation-scaled) loss of one micro-batch."""
        self._pending.append(loss)
        if len(self._pending) > self._COMPACT_AFTER:
            # Runs without logging would otherwise hold one tensor per step forever.
            self._compact()

    def _compact(self) -> None:
        """Fold the pending losses into the compacted sums.

        The finite sum and the finite count stay apart: a non-finite loss logged later
        in the window is replaced by the mean of all the window's finite losses, the
        folded ones included, each counted once (not their sum as one loss).
        """
        finite_sum, finite_count = self._finite_parts()
        self._compacted_steps += len(self._pending)
        self._pending = []
        if self._compacted is not None:
            finite_sum = finite_sum + self._compacted[0]
            finite_count = finite_count + self._compacted[1]
        self._compacted = (finite_sum, finite_count)

    def _finite_parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The pending losses' sum and count, both over the finite ones only when
        filtering (without the filter a NaN stays in the sum, as it should)."""
        losses = torch.stack([loss.float().reshape(()) for loss in self._pending])
        if not self._filter_nan_inf:  # a fill, not a copy from the host (which syncs)
            return losses.sum(), torch.full((), len(losses), device=losses.device)
        finite = torch.isfinite(losses)
        return torch.where(finite, losses, 0.0).sum(), finite.sum()

    def _has_window(self) -> bool:
        return bool(self._pending) or self._compacted is not None

    def _window_sum(self) -> torch.Tensor:
        """The window's losses summed, each non-finite one counted as the finite mean
        when filtering; empties the window (pending and compacted)."""
        if self._pending:
            finite_sum, finite_count = self._finite_parts()
            if self._compacted is not None:
                finite_sum = finite_sum + self._compacted[0].to(finite_sum.device)
                finite_count = finite_count + self._compacted[1].to(finite_count.device)
        else:
            finite_sum, finite_count = self._compacted  # type: ignore[misc]  # callers check _has_window
        steps = len(self._pending) + self._compacted_steps
        self._pending = []
        self._compacted, self._compacted_steps = None, 0
        if not self._filter_nan_inf:
            return finite_sum
        replaced = steps - finite_count
        fallback = finite_sum / finite_count.clamp(min=1)
        # Adds an exact 0 when every loss was finite, so the common case's sum is the
        # plain sum (a where, not 0 * fallback, which would be NaN for an inf sum).
        return finite_sum + torch.where(replaced > 0, replaced * fallback, 0.0)

    def running_sum(self, device: torch.device | str) -> torch.Tensor:
        """The loss summed since the last log as one tensor: the reference's ``tr_loss``.

        For a ``_maybe_log_save_evaluate`` override, which reads it and may reset it in
        place (``tr_loss -= tr_loss``); what it removes, :meth:`flush` no longer counts.
        Folding the pending losses in costs a kernel, so only that override asks for it.
        """
        if self._running is None:
            where = self._window_device() or device
            self._running = torch.zeros((), dtype=torch.float32, device=where)
        if self._has_window():
            self._running += self._window_sum().detach().to(self._running.device)
        return self._running

    def _window_device(self) -> torch.device | None:
        if self._pending:
            return self._pending[0].device
        return self._compacted[0].device if self._compacted is not None else None

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
        window_sum = self._take_window()
        if window_sum is None:
            return 0.0
        if reduce is not None:
            window_sum = reduce(window_sum)  # type: ignore[operator]  # a runtime.reduce
        value = float(window_sum.item())
        steps = max(self._steps_pending, 1)
        self.total += value
        self._steps_pending = 0
        return value / steps

    def _take_window(self) -> torch.Tensor | None:
        """The losses since the last flush (pending and running), emptied; None if none."""
        window = self._window_sum() if self._has_window() else None
        running = self._running
        if running is not None:
            window = running.clone() if window is None else window + running
            running.zero_()
        return window
