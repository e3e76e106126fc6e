"""The model's special token ids brought in line with the tokenizer it is trained with.

Fine-tuning often gives a tokenizer a token the base model never had (a padding token,
an end-of-turn token used as EOS). The model's ``config`` and ``generation_config`` keep
the base model's ids unless told, so the checkpoints and the final ``save_model`` would
carry ids that no longer match the tokenizer saved beside them, and ``generate`` would
not stop at the new end token. transformers 5 aligns them when training starts; so do
we, before the first step, so that evaluation's generation already uses them.

Only ids the tokenizer defines are written: a tokenizer without a padding token says
nothing about the model's. EOS may be several ids (any of them stops generation): the
tokenizer's is added in front, the others are kept.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

_TOKENS = ("eos_token_id", "bos_token_id", "pad_token_id")


def align_special_tokens(model: Any, processing_class: Any) -> dict[str, int]:
    """Write the tokenizer's EOS / BOS / PAD ids into the model's text config and its
    generation config where they differ; return what changed (and log it once).

    Does nothing unless ``processing_class`` is a transformers tokenizer or processor and
    the model has a ``config``: other objects name no token ids the model should follow.
    """
    tokenizer = _tokenizer_of(processing_class)
    config = getattr(model, "config", None)
    if tokenizer is None or config is None:
        return {}
    if callable(getattr(config, "get_text_config", None)):
        config = config.get_text_config()  # multimodal models keep the ids there
    generation_config = getattr(model, "generation_config", None)
    changed: dict[str, int] = {}
    for name in _TOKENS:
        wanted = getattr(tokenizer, name, None)
        if isinstance(wanted, int) and _align(name, wanted, config, generation_config):
            changed[name] = wanted
    if changed:
        logger.warning(
            "The tokenizer's special tokens differ from the model's config and generation "
            "config, which now use the tokenizer's ids (saved with every checkpoint): %s.",
            changed,
        )
    return changed


def _tokenizer_of(processing_class: Any) -> Any:
    """The transformers tokenizer inside ``processing_class`` (itself, or a processor's)."""
    if processing_class is None or "transformers" not in sys.modules:
        return None  # a transformers tokenizer implies transformers is imported already
    from transformers import PreTrainedTokenizerBase, ProcessorMixin

    if isinstance(processing_class, ProcessorMixin):
        processing_class = getattr(processing_class, "tokenizer", None)
    return processing_class if isinstance(processing_class, PreTrainedTokenizerBase) else None


def _align(name: str, wanted: int, config: Any, generation_config: Any) -> bool:
    """Set one id in both configs; False when both already hold it."""
    several = name == "eos_token_id"
    held = getattr(config, name, None)
    generation_held = getattr(generation_config, name, None) if generation_config else None
    if _holds(held, wanted) and (generation_config is None or _holds(generation_held, wanted)):
        return False
    # A config listing several EOS ids keeps them all; a single id is replaced.
    setattr(
        config, name, _with_first(wanted, held) if several and isinstance(held, list) else wanted
    )
    if generation_config is not None:
        setattr(
            generation_config, name, _with_first(wanted, generation_held) if several else wanted
        )
    return True


def _holds(held: Any, wanted: int) -> bool:
    return wanted in held if isinstance(held, list) else held == wanted


def _with_first(wanted: int, held: Any) -> list[int]:
    """``wanted`` followed by the other ids already held (none dropped, none repeated)."""
    others = held if isinstance(held, list) else [held]
    return [wanted, *(token for token in others if token is not None and token != wanted)]
