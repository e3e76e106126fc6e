"""Character-level language model example: a plain-torch model, its data, a training script.

`model` and `corpus` import only torch, so they can be used and tested without `trainer`;
`train_char_lm` is the script that drives them with `trainer.Trainer`.
"""

from __future__ import annotations

from .corpus import (
    DEFAULT_DATA_DIR,
    CharVocab,
    CharWindowDataset,
    Document,
    build_datasets,
    load_documents,
    split_documents,
)
from .model import CharLMConfig, CharTransformer

__all__ = [
    "DEFAULT_DATA_DIR",
    "CharLMConfig",
    "CharTransformer",
    "CharVocab",
    "CharWindowDataset",
    "Document",
    "build_datasets",
    "load_documents",
    "split_documents",
]
