"""Adafactor (Shazeer & Stern, 2018, "Adafactor: Adaptive Learning Rates with Sublinear
Memory Cost"), with the constructor of the reference's ``transformers.Adafactor``.

Why our own: ``optim="adafactor"`` must train like the reference, which runs its
Adafactor with ``scale_parameter=False, relative_step=False`` and the learning rate of
the arguments; ``torch.optim.Adafactor`` is another variant (its ``lr`` caps a relative
step that is multiplied by the parameter scale), and trainer-loop does not depend on
transformers. The state keys and parameter-group options are the reference's, so an
``optimizer.pt`` written by either loads into the other.

One step for a parameter ``X`` with gradient ``G`` (step ``t``):

1. second moments, decayed with ``beta2_t = 1 - t ** decay_rate``: for a matrix (or a
   stack of them) only the row means ``R`` and column means ``C`` of ``G**2 + eps[0]``
   are kept, and ``V = outer(R, C) / mean(R)`` stands for the full matrix (the memory
   saving); vectors keep the full ``V``;
2. ``U = G / sqrt(V)``, clipped so that ``RMS(U) <= clip_threshold``;
3. step size ``lr``; with ``relative_step`` it is ``min(1e-2, 1 / sqrt(t))`` (warm-up:
   ``min(1e-6 * t, 1 / sqrt(t))``), and ``scale_parameter`` multiplies it by
   ``max(eps[1], RMS(X))``;
4. optional first moment (``beta1``) of the scaled update, decoupled weight decay
   (``X -= weight_decay * step_size * X``), then ``X -= update``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Adafactor", "AdafactorSchedule", "get_adafactor_schedule"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class Adafactor(torch.optim.Optimizer):
    """Adafactor, a drop-in for ``transformers.Adafactor`` (same arguments and defaults).

    For an external learning-rate schedule (what the Trainer's ``optim="adafactor"``
    does) pass ``lr`` with ``scale_parameter=False, relative_step=False``; with
    ``relative_step=True`` the optimizer computes its own step size and ``lr`` must be
    None.

    Args:
        params: Parameters or parameter groups to optimize.
        lr: The external learning rate (None with ``relative_step``).
        eps: Added to the squared gradient, and the least parameter scale.
        clip_threshold: The largest root mean square an update may have.
        decay_rate: Exponent of the second-moment decay, ``beta2_t = 1 - t**decay_rate``.
        beta1: Coefficient of a running average of updates (None: no first moment).
        weight_decay: Decoupled weight decay, multiplied by the step size.
        scale_parameter: Multiply the step size by the parameter's root mean square.
        relative_step: Use the time-dependent step size instead of ``lr``.
        warmup_init: Grow the relative step size linearly from zero (needs
            ``relative_step``).

    Raises:
        ValueError: ``lr`` with ``relative_step=True``, or ``warmup_init`` without it.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | None = None,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        beta1: float | None = None,
        weight_decay: float = 0.0,
        scale_parameter: bool = True,
        relative_step: bool = True,
        warmup_init: bool = False,
    ) -> None:
        _check_options(lr, relative_step, warmup_init)
        defaults = {
            "lr": lr,
            "eps": eps,
            "clip_threshold": clip_threshold,
            "decay_rate": decay_rate,
            "beta1": beta1,
            "weight_decay": weight_decay,
            "scale_parameter": scale_parameter,
            "relative_step": relative_step,
            "warmup_init": warmup_init,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    @staticmethod
    def _get_lr(param_group: dict[str, Any], param_state: dict[str, Any]) -> Any:
        """The step size a parameter group's parameter with ``param_state`` last took.

        The reference's name and signature: :class:`AdafactorSchedule` (ours and the
        reference's) reads the learning rate through it.
        """
        return _step_size(param_group, param_state)

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        grad = param.grad
        if grad.is_sparse:
            raise RuntimeError("Adafactor does not support sparse gradients; use dense ones.")
        if grad.dtype in _LOW_PRECISION:
            grad = grad.float()
        weights = param.float() if param.dtype in _LOW_PRECISION else param
        state = self.state[param]
        if not state:
            _init_state(state, grad, group)
        state["step"] += 1
        state["RMS"] = _rms(weights)
        step_size = _step_size(group, state)
        update = _normalised_gradient(grad, state, group)
        update.div_((_rms(update) / group["clip_threshold"]).clamp_(min=1.0))
        update.mul_(step_size)
        if group["beta1"] is not None:
            exp_avg = state["exp_avg"] = state["exp_avg"].to(grad)
            exp_avg.mul_(group["beta1"]).add_(update, alpha=1.0 - group["beta1"])
            update = exp_avg
        if group["weight_decay"] != 0:
            weights.add_(weights * (-group["weight_decay"] * step_size))
        weights.sub_(update)
        if weights is not param:
            param.copy_(weights)


class AdafactorSchedule(torch.optim.lr_scheduler.LambdaLR):
    """A schedule that only reports the step size an :class:`Adafactor` chose itself.

    With ``relative_step=True`` Adafactor computes its own step size, but a training
    loop (the Trainer's ``optimizers=(optimizer, scheduler)``) still steps a scheduler
    and logs its ``get_last_lr()``. This one changes nothing: it reads back the step
    size of each group's first parameter (``Adafactor._get_lr``), and ``initial_lr``
    until a parameter has a gradient. The same constructor and behaviour as
    ``transformers.optimization.AdafactorSchedule``, whose Adafactor it also accepts.

    Args:
        optimizer: the Adafactor (any optimizer with a static ``_get_lr(group, state)``).
        initial_lr: what ``get_last_lr()`` returns before the first step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, initial_lr: float = 0.0) -> None:
        # The base class reads each group's "initial_lr" (a relative-step group's "lr"
        # is None); it is removed again so that the optimizer's state stays as it was.
        for group in optimizer.param_groups:
            group["initial_lr"] = initial_lr
        super().__init__(optimizer, lambda _: initial_lr)
        for group in optimizer.param_groups:
            del group["initial_lr"]

    def get_lr(self) -> list[Any]:  # type: ignore[override]  # the step sizes Adafactor took
        """The step size of each group whose first parameter has a gradient."""
        optimizer: Any = self.optimizer
        sizes = [
            optimizer._get_lr(group, optimizer.state[group["params"][0]])
            for group in optimizer.param_groups
            if group["params"][0].grad is not None
        ]
        return sizes or list(self.base_lrs)


def get_adafactor_schedule(
    optimizer: torch.optim.Optimizer, initial_lr: float = 0.0
) -> AdafactorSchedule:
    """An :class:`AdafactorSchedule` for ``optimizer`` (the reference's factory)."""
    return AdafactorSchedule(optimizer, initial_lr)


def _check_options(lr: float | None, relative_step: bool, warmup_init: bool) -> None:
    if lr is not None and relative_step:
        raise ValueError(
            f"Adafactor got lr={lr} and relative_step=True: the relative step replaces the "
            "learning rate. Pass lr=None, or relative_step=False to use lr."
        )
    if warmup_init and not relative_step:
        raise ValueError(
            "Adafactor got warmup_init=True with relative_step=False: the warm-up grows the "
            "relative step. Set relative_step=True (and lr=None), or warmup_init=False."
        )


def _init_state(state: dict[str, Any], grad: torch.Tensor, group: dict[str, Any]) -> None:
    """Zero moments shaped for ``grad``: factored (row and column) for 2-D and up."""
    state["step"] = 0
    if group["beta1"] is not None:
        state["exp_avg"] = torch.zeros_like(grad)
    if grad.dim() >= 2:
        state["exp_avg_sq_row"] = grad.new_zeros(grad.shape[:-1])
        state["exp_avg_sq_col"] = grad.new_zeros(grad.shape[:-2] + grad.shape[-1:])
    else:
        state["exp_avg_sq"] = torch.zeros_like(grad)
    state["RMS"] = 0


def _rms(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.norm(2) / math.sqrt(tensor.numel())


def _step_size(group: dict[str, Any], state: dict[str, Any]) -> Any:
    """The step size: ``lr`` or the relative step, times the parameter scale if asked.

    A tensor when scaled by the parameter's RMS (kept on the device: no host sync).
    """
    size = group["lr"]
    if group["relative_step"]:
        step = state["step"]
        ceiling = 1e-6 * step if group["warmup_init"] else 1e-2
        size = min(ceiling, 1.0 / math.sqrt(step))
    if group["scale_parameter"]:
        return state["RMS"].clamp(min=group["eps"][1]) * size
    return size


def _normalised_gradient(
    grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]
) -> torch.Tensor:
    """``grad / sqrt(V)`` after folding ``grad**2`` into the second-moment estimate."""
    beta2 = 1.0 - math.pow(state["step"], group["decay_rate"])
    squared = grad.square().add_(group["eps"][0])
    if grad.dim() < 2:
        second = state["exp_avg_sq"] = state["exp_avg_sq"].to(grad)
        second.mul_(beta2).add_(squared, alpha=1.0 - beta2)
        return second.rsqrt().mul_(grad)
    rows = state["exp_avg_sq_row"] = state["exp_avg_sq_row"].to(grad)
    cols = state["exp_avg_sq_col"] = state["exp_avg_sq_col"].to(grad)
    rows.mul_(beta2).add_(squared.mean(dim=-1), alpha=1.0 - beta2)
    cols.mul_(beta2).add_(squared.mean(dim=-2), alpha=1.0 - beta2)
    # rsqrt(outer(R, C) / mean(R)) without forming the full matrix first.
    row_factor = (rows / rows.mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
    col_factor = cols.unsqueeze(-2).rsqrt()
    return (row_factor * col_factor).mul_(grad)
