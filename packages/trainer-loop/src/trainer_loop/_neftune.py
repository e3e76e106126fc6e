"""NEFTune (``neftune_noise_alpha``): noisy input embeddings while training.

Jain et al., "NEFTune: Noisy Embeddings Improve Instruction Finetuning" (2023): during
training, every input embedding gets uniform noise in ``[-m, m]`` with
``m = alpha / sqrt(sequence_length * hidden_size)``. The noise is added by a forward
hook on the model's input embedding module, registered when ``train()`` starts and
removed when it ends (also when it fails), so that evaluation and prediction after
training, and the saved model, see plain embeddings. Evaluation during training sees
none either: the hook adds noise only while the embedding module is in training mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["embedding_noise", "noise_bound"]


def noise_bound(alpha: float, sequence_length: int, hidden_size: int) -> float:
    """The half-width ``alpha / sqrt(sequence_length * hidden_size)`` of the noise.

    Computed in float32, as the reference does, so that a run draws the same noise as
    the reference's from the same random state.
    """
    positions = torch.tensor(float(sequence_length * hidden_size), dtype=torch.float32)
    return float(alpha / positions.sqrt())


def _add_noise(alpha: float) -> Any:
    """A forward hook that returns the embeddings plus NEFTune noise while training."""

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not module.training or not isinstance(output, torch.Tensor) or output.dim() < 2:
            return None  # None keeps the module's own output
        bound = noise_bound(alpha, output.shape[-2], output.shape[-1])
        return output + torch.zeros_like(output).uniform_(-bound, bound)

    return hook


def _input_embeddings(model: nn.Module) -> nn.Module:
    getter = getattr(model, "get_input_embeddings", None)
    embeddings = getter() if callable(getter) else None
    if not isinstance(embeddings, nn.Module):
        raise ValueError(
            f"neftune_noise_alpha is set, but {type(model).__name__} has no input embedding "
            "module to add noise to: NEFTune needs model.get_input_embeddings() to return "
            f"an nn.Module (got {'no such method' if getter is None else repr(embeddings)}). "
            "Define get_input_embeddings() on the model, or leave neftune_noise_alpha unset."
        )
    return embeddings


@contextmanager
def embedding_noise(model: nn.Module, alpha: float | None) -> Iterator[None]:
    """Add NEFTune noise to ``model``'s input embeddings inside the block.

    Nothing happens when ``alpha`` is None (NEFTune off).

    Raises:
        ValueError: ``alpha`` is set but the model has no input embedding module.
    """
    if alpha is None:
        yield
        return
    embeddings = _input_embeddings(model)
    handle: RemovableHandle = embeddings.register_forward_hook(_add_noise(float(alpha)))
    # The module carries the alpha while the hook is on, as with the reference: code
    # written for it (callbacks, its own hook function) reads it there.
    embeddings.neftune_noise_alpha = alpha
    try:
        yield
    finally:
        handle.remove()
        vars(embeddings).pop("neftune_noise_alpha", None)
