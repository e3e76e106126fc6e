"""Mixed precision: which settings can run where, and how backward/step change with fp16.

fp32 and bf16 need no loss scaling: backward and the optimizer step are plain torch calls
(:class:`PlainSteps`). fp16 gradients underflow without it, so :class:`ScaledSteps`
multiplies the loss by a dynamic scale before backward, unscales before clipping, and
lets ``torch.amp.GradScaler`` skip the optimizer step when a gradient overflowed.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

MixedPrecision = Literal["no", "fp16", "bf16"]

_PRECISIONS = ("no", "fp16", "bf16")
_BACKENDS = ("auto", "cuda_amp", "cpu_amp", "apex")


def check_precision(
    *,
    mixed_precision: str,
    half_precision_backend: str,
    device: torch.device,
    fp16_full_eval: bool,
    bf16_full_eval: bool,
) -> None:
    """Refuse precision settings that cannot run on ``device``, saying what would.

    Raises:
        ValueError: an unknown precision or backend, apex, fp16 on CPU or MPS, bf16 on a
            GPU without bf16 support, or a full-eval dtype the device cannot run.
    """
    if mixed_precision not in _PRECISIONS:
        raise ValueError(
            f"mixed_precision={mixed_precision!r} is not supported; use one of {_PRECISIONS}."
        )
    _check_backend(half_precision_backend, mixed_precision)
    if mixed_precision == "fp16":
        _check_fp16(device, "fp16=True (mixed precision training)")
    if fp16_full_eval:
        _check_fp16(device, "fp16_full_eval=True")
    if mixed_precision == "bf16":
        _check_bf16(device, "bf16=True (mixed precision training)")
    if bf16_full_eval:
        _check_bf16(device, "bf16_full_eval=True")


def _check_backend(backend: str, mixed_precision: str) -> None:
    if backend not in _BACKENDS:
        raise ValueError(
            f"half_precision_backend={backend!r} is not supported; use one of {_BACKENDS} "
            f"('auto' picks torch.amp on the training device)."
        )
    if backend == "apex" and mixed_precision != "no":
        raise ValueError(
            "half_precision_backend='apex' is not supported: NVIDIA apex is not used by this "
            "trainer. Use half_precision_backend='auto' (or 'cuda_amp'), which runs native "
            "torch.amp mixed precision with the same fp16/bf16 settings."
        )


def _check_fp16(device: torch.device, option: str) -> None:
    if device.type == "cpu":
        raise ValueError(
            f"{option} needs a CUDA GPU, but this process runs on the CPU. For mixed "
            f"precision on the CPU use bf16 instead (bf16=True / bf16_full_eval=True)."
        )
    if device.type == "mps":
        raise ValueError(
            f"{option} is not supported on Apple MPS devices. Use bf16 instead "
            f"(bf16=True / bf16_full_eval=True) or train in fp32."
        )


def _check_bf16(device: torch.device, option: str) -> None:
    from trainer_dist._environment import supports_bf16

    if not supports_bf16(device):
        name = torch.cuda.get_device_name(device)
        raise ValueError(
            f"{option} needs a GPU with bf16 support (Ampere or newer), but {device} is a "
            f"{name}. Use fp16=True / fp16_full_eval=True on this GPU, or train in fp32."
        )


def autocast_dtype(mixed_precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision name; ``None`` for "no"."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision)


class PlainSteps:
    """Backward and optimizer step without loss scaling (fp32 and bf16)."""

    __slots__ = ()

    def track(self, optimizer: Any) -> None:
        """Nothing to remember about optimizers without a scaler."""

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``."""
        loss.backward()

    def unscale_gradients(self) -> None:
        """Gradients are not scaled: nothing to undo."""

    def step(self, optimizer: Any) -> bool:
        """Step ``optimizer``; always ``True``."""
        optimizer.step()
        return True

    def state_dict(self) -> dict[str, Any]:
        """No state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """No state to restore."""


class ScaledSteps:
    """fp16 backward and optimizer step through ``torch.amp.GradScaler``.

    Whether the scaler skipped a step is learnt from a step post-hook registered on each
    optimizer: the scaler calls ``optimizer.step()`` only when gradients are finite, so
    the hook fires exactly for steps taken. This adds no host-device synchronisation; the
    one the scaler itself performs (reading its found-inf flag to decide whether to step)
    remains, once per optimizer step.
    """

    def __init__(self, device_type: str) -> None:
        self.scaler = torch.amp.GradScaler(device_type)
        self._optimizers: dict[int, Any] = {}
        self._stepped = False

    def track(self, optimizer: Any) -> None:
        """Register ``optimizer`` so that clipping can unscale it and steps are observed."""
        if id(optimizer) not in self._optimizers:
            optimizer.register_step_post_hook(self._on_step)
            self._optimizers[id(optimizer)] = optimizer

    def _on_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._stepped = True

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate the scaled loss."""
        self.scaler.scale(loss).backward()

    def unscale_gradients(self) -> None:
        """Divide the gradients of every tracked optimizer by the scale (before clipping).

        Raises:
            RuntimeError: no optimizer was passed through ``prepare_optimizer``.
        """
        if not self._optimizers:
            raise RuntimeError(
                "fp16 gradient clipping must unscale the optimizer's gradients first, but no "
                "optimizer is known to the runtime. Pass it through "
                "runtime.prepare_optimizer(optimizer) before training."
            )
        for optimizer in self._optimizers.values():
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: Any) -> bool:
        """Step unless a gradient overflowed, update the scale; ``False`` when skipped."""
        self.track(optimizer)
        self._stepped = False
        self.scaler.step(optimizer)
        self.scaler.update()
        return self._stepped

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (scale, growth tracker), for checkpoints."""
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`."""
        self.scaler.load_state_dict(state)
