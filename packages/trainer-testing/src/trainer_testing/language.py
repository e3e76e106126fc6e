"""Uneven token data and a tiny causal LM, for tests of loss normalisation.

Needs the ``torch`` extra, and transformers for :func:`tiny_llama` (imported when called,
so that the data helper works without it).
"""

from __future__ import annotations

from typing import Any

import torch


def padded_token_sequences(
    size: int, length: int, vocab: int, *, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """``size`` rows padded to ``length``, holding between 2 and ``length`` real tokens.

    Padding has input id 0, attention mask 0 and label -100, so batches of the same
    number of rows hold different numbers of scored tokens: the case where averaging
    per-batch mean losses differs from the mean over every token.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for index in range(size):
        real = 2 + (index * 7) % (length - 1)
        ids = torch.randint(2, vocab, (length,), generator=generator)
        mask = (torch.arange(length) < real).long()
        labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
        rows.append({"input_ids": ids * mask, "attention_mask": mask, "labels": labels})
    return rows


def tiny_llama(
    vocab: int, max_positions: int, *, seed: int = 0, layers: int = 1, tied: bool = False
) -> Any:
    """A ``LlamaForCausalLM`` of a few thousand parameters, seeded (no dropout); ``tied``
    shares the input embedding's weight with the output projection."""
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tied,
    )
    return transformers.LlamaForCausalLM(config)
