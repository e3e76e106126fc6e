"""What ``include_num_input_tokens_seen`` counts in one batch.

transformers 5 takes a word: ``"all"`` (every element of the main input, padding
included: v4.34's count, and what ``True`` means), ``"non_padding"`` or ``"no"``.
Non-padding tokens are the ones of the ``attention_mask``; without a mask, the main
input's elements that differ from the processing class's ``pad_token_id``; without
either, every element (with a warning, once).

An "all" count is a host integer (the tensor's shape). A non-padding count is a tensor
on the batch's device, added up there; the loop reads the total after each counted
micro-batch, as the reference does, because callbacks read
``state.num_input_tokens_seen`` at every step (a token budget that stops training).
Runs that count no tokens pay nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["NON_PADDING", "TokenCounter", "counts_non_padding"]

logger = logging.getLogger(__name__)

NON_PADDING = "non_padding"
"""The ``include_num_input_tokens_seen`` word that leaves padding out of the count."""


def counts_non_padding(args: Any) -> bool:
    """Whether the arguments ask to count non-padding tokens only."""
    return getattr(args, "include_num_input_tokens_seen", False) == NON_PADDING


class TokenCounter:
    """Adds up one process's input tokens; reading the total (``total``) is the only
    host synchronisation, which the loop decides when to pay.

    ``host`` holds what is known on the host (whole-tensor counts, and the share a
    resumed run starts from); ``device`` the non-padding counts, still on the device.

    Args:
        non_padding: Count the attention mask's ones (see the module docstring).
        pad_token_id: The processing class's padding id, for batches without a mask.
    """

    def __init__(self, *, non_padding: bool, pad_token_id: int | None = None) -> None:
        self.non_padding = non_padding
        self.pad_token_id = pad_token_id
        self.device: torch.Tensor | None = None
        self._warned = False
        self._warned_missing = False

    def add(self, inputs: Any, main_input: torch.Tensor) -> int:
        """Count one batch; return the part known on the host (0 for a device count)."""
        if not self.non_padding:
            return main_input.numel()
        counted = self._non_padding(inputs, main_input)
        if counted is None:
            return main_input.numel()
        self.device = counted if self.device is None else self.device + counted
        return 0

    def warn_missing(self, model: Any, inputs: Any) -> None:
        """Say once that a batch without the model's main input counts no token."""
        if self._warned_missing:
            return
        self._warned_missing = True
        name = getattr(model, "main_input_name", "input_ids")
        keys = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
        logger.warning(
            "include_num_input_tokens_seen is on, but the batch has no tensor under the "
            "model's main input name %r (batch keys: %s), so no token is counted. Set "
            "main_input_name on the model to the key that holds its tokens.",
            name,
            keys,
        )

    def _non_padding(self, inputs: Any, main_input: torch.Tensor) -> torch.Tensor | None:
        mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
        if isinstance(mask, torch.Tensor):
            return mask.sum(dtype=torch.int64)
        if self.pad_token_id is not None:
            return (main_input != self.pad_token_id).sum(dtype=torch.int64)
        if not self._warned:
            self._warned = True
            logger.warning(
                "include_num_input_tokens_seen='non_padding', but the batch has no "
                "attention_mask and the processing class no pad_token_id: counting every "
                "token of the main input instead."
            )
        return None

    def total(self, host: int, device: torch.device) -> torch.Tensor:
        """``host`` plus the device counts, as one int64 tensor on ``device``."""
        total = torch.tensor(host, dtype=torch.int64, device=device)
        if self.device is not None:
            total += self.device.to(device)
        return total
