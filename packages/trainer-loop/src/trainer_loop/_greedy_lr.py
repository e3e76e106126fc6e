"""``lr_scheduler_type="greedy"``: a learning rate that follows the evaluation metric.

transformers 5 added GreedyLR (arXiv:2512.14527). Like ``ReduceLROnPlateau`` it is not
a function of the step: the Trainer steps it after each evaluation with the value of
``metric_for_best_model`` (``eval_loss`` by default), and never after an optimizer step.
It differs in reacting both ways:

* an improvement (by more than ``threshold``) for more than ``patience`` evaluations in
  a row divides every group's rate by ``factor`` (capped at ``max_lr``), then waits
  ``warmup`` evaluations before judging again;
* no improvement for more than ``patience`` evaluations multiplies the rates by
  ``factor`` (floored at ``min_lr``), then waits ``cooldown`` evaluations;
* once every group has sat at ``min_lr`` for ``reset_start`` reductions, the scheduler
  starts over from the initial rates and forgets the best value.

``smooth=True`` judges a rolling mean of the last ``window_size`` values instead of the
raw one. ``state_dict()`` uses transformers' keys and plain values, so ``scheduler.pt``
loads with ``weights_only=True`` into this class or into transformers'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.optim import Optimizer

__all__ = ["GreedyLR", "StreamingAverage"]


class StreamingAverage:
    """The mean of the last ``window_size`` values given to :meth:`streamavg`."""

    def __init__(self, window_size: int) -> None:
        self.window_size = window_size
        self.values: list[float] = []
        self.sum = 0.0

    def streamavg(self, value: float) -> float:
        """Add ``value`` and return the mean of the window it now closes."""
        self.values.append(value)
        self.sum += value
        if len(self.values) > self.window_size:
            self.sum -= self.values.pop(0)
        return self.sum / len(self.values)

    def state_dict(self) -> dict[str, Any]:
        return {"window_size": self.window_size, "values": list(self.values), "sum": self.sum}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.window_size = state_dict.get("window_size", self.window_size)
        self.values = list(state_dict.get("values", []))
        self.sum = state_dict.get("sum", 0.0)


def _per_group(value: float | Sequence[float], optimizer: Optimizer, name: str) -> list[float]:
    groups = len(optimizer.param_groups)
    if not isinstance(value, (list, tuple)):
        return [value] * groups
    if len(value) != groups:
        raise ValueError(
            f"{name} has {len(value)} values but the optimizer has {groups} parameter "
            f"groups; give one {name} per group, or a single number for all."
        )
    return list(value)


# What state_dict() saves: transformers' keys, in its order (besides the two lr lists).
_STATE_KEYS = (
    "factor", "min_lrs", "max_lrs", "patience", "verbose", "cooldown", "warmup",
    "cooldown_counter", "warmup_counter", "mode", "threshold", "threshold_mode", "best",
    "num_bad_epochs", "num_good_epochs", "eps", "last_epoch", "smooth", "window_size",
    "reset_start", "reset_start_original", "_last_lr", "_init_lrs",
)  # fmt: skip


class GreedyLR:
    """Raise the learning rate while the metric improves, lower it while it does not.

    Step it with the monitored value: ``scheduler.step(eval_loss)``. See the module
    docstring for the rules; the arguments are transformers' ``GreedyLR``'s.

    Args:
        optimizer: The optimizer whose groups' rates are adjusted in place.
        mode: ``"min"`` (lower is better) or ``"max"``.
        factor: Below 1: the multiplier on a plateau, the divisor on improvement.
        patience: Evaluations in a row (improving or not) tolerated before a change.
        threshold: How much better than the best a value must be to count.
        threshold_mode: ``"abs"`` (``best - threshold``) or ``"rel"`` (``best * (1 -
            threshold)``, with the signs flipped in ``"max"`` mode).
        cooldown: Evaluations ignored after a reduction.
        warmup: Evaluations ignored after an increase.
        min_lr: Floor of the rates (one number, or one per group).
        max_lr: Cap of the rates (one number, or one per group).
        eps: Changes smaller than this are not applied.
        verbose: Print each change.
        smooth: Judge the rolling mean of the values instead of each value.
        window_size: Values the rolling mean covers.
        reset_start: Reductions spent with every group at ``min_lr`` before a reset.

    Raises:
        ValueError: ``factor`` is not below 1, an unknown ``mode`` or
            ``threshold_mode``, or per-group bounds that do not match the groups.
        TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.95,
        patience: int = 10,
        threshold: float = 1e-6,
        threshold_mode: str = "abs",
        cooldown: int = 0,
        warmup: int = 0,
        min_lr: float | list[float] = 1e-3,
        max_lr: float | list[float] = 1.0,
        eps: float = 1e-8,
        verbose: bool = False,
        smooth: bool = False,
        window_size: int = 50,
        reset_start: int = 500,
    ) -> None:
        _check_settings(optimizer, mode, factor, threshold_mode)
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.warmup, self.eps, self.verbose = cooldown, warmup, eps, verbose
        self.smooth, self.window_size = smooth, window_size
        self.reset_start = self.reset_start_original = reset_start
        self.min_lrs = _per_group(min_lr, optimizer, "min_lr")
        self.max_lrs = _per_group(max_lr, optimizer, "max_lr")
        self._init_lrs = [group["lr"] for group in optimizer.param_groups]
        self._last_lr = list(self._init_lrs)
        self.last_epoch = 0
        self._streaming_avg = StreamingAverage(window_size) if smooth else None
        self._forget_progress()

    def _forget_progress(self) -> None:
        self.best = float("inf") if self.mode == "min" else float("-inf")
        self.num_bad_epochs = self.num_good_epochs = 0
        self.cooldown_counter = self.warmup_counter = 0

    def step(self, metrics: float, epoch: int | None = None) -> None:
        """Judge one evaluation's value and change the rates if the rules say so."""
        current = float(metrics)
        if self._streaming_avg is not None:
            current = self._streaming_avg.streamavg(current)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.cooldown_counter > 0 or self.warmup_counter > 0:
            if self.cooldown_counter > 0:
                self.cooldown_counter -= 1
            else:
                self.warmup_counter -= 1
            self.num_bad_epochs = self.num_good_epochs = 0
        else:
            self._judge(current)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _judge(self, current: float) -> None:
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs, self.num_good_epochs = 0, self.num_good_epochs + 1
        else:
            self.num_bad_epochs, self.num_good_epochs = self.num_bad_epochs + 1, 0
        if self.num_good_epochs > self.patience:
            self._increase_lr()
            self.warmup_counter, self.num_good_epochs = self.warmup, 0
        elif self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def is_better(self, current: float, best: float) -> bool:
        """Whether ``current`` improves on ``best`` by more than the threshold."""
        relative = self.threshold_mode == "rel"
        if self.mode == "min":
            return current < (best * (1.0 - self.threshold) if relative else best - self.threshold)
        return current > (best * (1.0 + self.threshold) if relative else best + self.threshold)

    def _reduce_lr(self) -> None:
        all_at_min = True
        for index, group in enumerate(self.optimizer.param_groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[index])
            if old - new > self.eps:
                group["lr"] = new
                self._say(f"reducing learning rate of group {index} to {new:.4e}.")
            all_at_min = all_at_min and group["lr"] <= self.min_lrs[index]
        if all_at_min:
            self.reset_start -= 1
            if self.reset_start <= 0:
                self._reset()

    def _increase_lr(self) -> None:
        for index, group in enumerate(self.optimizer.param_groups):
            old = float(group["lr"])
            new = min(old / self.factor, self.max_lrs[index])
            if new - old > self.eps:
                group["lr"] = new
                self._say(f"increasing learning rate of group {index} to {new:.4e}.")
        self.reset_start = self.reset_start_original

    def _reset(self) -> None:
        for group, initial in zip(self.optimizer.param_groups, self._init_lrs, strict=True):
            group["lr"] = initial
        self._forget_progress()
        self.reset_start = self.reset_start_original
        if self._streaming_avg is not None:
            self._streaming_avg = StreamingAverage(self.window_size)
        self._say("scheduler reset to the initial learning rates.")

    def _say(self, message: str) -> None:
        if self.verbose:
            print(f"Epoch {self.last_epoch}: {message}")

    def get_last_lr(self) -> list[float]:
        """The groups' rates after the latest :meth:`step`."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        """Everything :meth:`load_state_dict` needs, as plain values."""
        state = {key: getattr(self, key) for key in _STATE_KEYS}
        if self._streaming_avg is not None:
            state["_streaming_avg"] = self._streaming_avg.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (ours or transformers'); the groups' rates are
        set to the saved ``_last_lr``."""
        for key in _STATE_KEYS:
            if key in state_dict:
                setattr(self, key, state_dict[key])
        if "_streaming_avg" in state_dict:
            if self._streaming_avg is None:
                self._streaming_avg = StreamingAverage(self.window_size)
            self._streaming_avg.load_state_dict(state_dict["_streaming_avg"])
        if "_last_lr" in state_dict:
            for group, rate in zip(self.optimizer.param_groups, self._last_lr, strict=False):
                group["lr"] = rate


def _check_settings(optimizer: Any, mode: str, factor: float, threshold_mode: str) -> None:
    if factor >= 1.0:
        raise ValueError(
            f"GreedyLR needs factor < 1 (it multiplies the rate on a plateau and divides it "
            f"on improvement); got factor={factor}. Set e.g. lr_scheduler_kwargs="
            "{'factor': 0.95}."
        )
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"GreedyLR needs a torch.optim.Optimizer; got {type(optimizer).__name__}.")
    if mode not in ("min", "max"):
        raise ValueError(f"GreedyLR mode={mode!r} is not one of 'min', 'max'.")
    if threshold_mode not in ("rel", "abs"):
        raise ValueError(f"GreedyLR threshold_mode={threshold_mode!r} is not one of 'rel', 'abs'.")
