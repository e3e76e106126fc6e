"""``accelerator_config["gradient_accumulation_kwargs"]``, read once where arguments are built.

The reference's Trainer accumulates gradients itself and takes two things from these
keys: ``num_steps``, another spelling of ``gradient_accumulation_steps`` (allowed only
while that is left at 1), and ``sync_each_batch``, which all-reduces the gradients after
every micro-batch instead of skipping that on all but the last (less memory held by
unsynchronised gradients, more communication). accelerate's ``adjust_scheduler`` and
``sync_with_dataloader`` do nothing there, since its own accumulation is not used, and
are accepted for the same reason.
"""

from __future__ import annotations

from typing import Any

from trainer_args._json_args import options_of
from trainer_args._messages import conflict, invalid

ACCUMULATION_KEYS = ("num_steps", "sync_each_batch", "adjust_scheduler", "sync_with_dataloader")


def apply_accumulation_kwargs(args: Any) -> None:
    """Check the keys; move ``num_steps`` onto ``gradient_accumulation_steps``.

    Raises:
        ValueError: an unknown key, a ``num_steps`` that is not a positive integer, or
            ``num_steps`` together with ``gradient_accumulation_steps`` above 1.
    """
    kwargs = accumulation_kwargs(args)
    unknown = sorted(set(kwargs) - set(ACCUMULATION_KEYS))
    if unknown:
        raise invalid(
            "accelerator_config['gradient_accumulation_kwargs']",
            kwargs,
            f"keys among {', '.join(ACCUMULATION_KEYS)}",
            f"Remove or fix {unknown}.",
        )
    steps = kwargs.get("num_steps")
    if steps is None:
        return
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise invalid("gradient_accumulation_kwargs['num_steps']", steps, "an integer >= 1")
    if args.gradient_accumulation_steps not in (1, steps):
        raise conflict(
            "gradient_accumulation_kwargs['num_steps']", steps,
            "gradient_accumulation_steps", args.gradient_accumulation_steps,
            "Give the number of accumulated micro-batches once.",
        )  # fmt: skip
    args.gradient_accumulation_steps = steps


def accumulation_kwargs(args: Any) -> dict[str, Any]:
    """The ``gradient_accumulation_kwargs`` of ``args.accelerator_config`` (``{}`` if unset)."""
    options = options_of(getattr(args, "accelerator_config", None)) or {}
    return dict(options.get("gradient_accumulation_kwargs") or {})


def syncs_each_batch(args: Any) -> bool:
    """Whether gradients are all-reduced after every micro-batch (``sync_each_batch``)."""
    return bool(accumulation_kwargs(args).get("sync_each_batch", False))
