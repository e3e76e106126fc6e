"""Collators: turn a list of examples into one batch of tensors.

The default collator runs once per batch in the data-loading hot path, so it inspects
the first example once to decide how to tensorise each key and then does one
``stack`` / ``tensor`` call per key. The reference's label convention is kept: a
``label`` or ``label_ids`` key becomes ``labels``, which is what models take.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch

__all__ = ["DataCollatorWithPadding", "default_data_collator", "pads_sequences"]

_LABEL_KEYS = ("label", "label_ids")
_TEXT_TYPES = (str, bytes)


def default_data_collator(
    features: Sequence[Any], return_tensors: str = "pt"
) -> dict[str, torch.Tensor]:
    """Collate examples that already have equal shapes into a dict of tensors.

    Contract:
        * Examples are mappings, dataclasses, named tuples or objects with attributes;
          every example has the keys of the first one.
        * ``label`` / ``label_ids`` become ``labels`` (``label`` when both are there):
          int64 when the first example's ``label`` (or first ``label_ids`` item) is an
          integer, else float32, so multi-hot lists are floats (tensors keep a floating
          dtype, integer ones go to int64).
        * Tensors are stacked, NumPy arrays and scalars are stacked through NumPy, other
          values (numbers, nested lists) get ``torch.tensor``'s dtypes (int64, the
          default float dtype, bool).
        * Keys whose value in the first example is None, a string, bytes or a list of
          strings are left out of the batch: they cannot be tensors, and raw text columns
          are common in datasets. Examples with nothing else are refused.

    Args:
        features: The examples of one batch.
        return_tensors: Only ``"pt"`` is supported (kept for signature compatibility).

    Returns:
        A dict from key to a tensor whose first dimension is ``len(features)``.

    Raises:
        ValueError: ``features`` is empty, ``return_tensors`` is not ``"pt"``, the
            examples hold only text or None, or the values of a key differ in shape (pad
            them first, for example with :class:`DataCollatorWithPadding`).
        TypeError: the examples are not dicts, dataclasses, named tuples or objects
            with attributes (plain tensors, lists, strings).
    """
    if return_tensors != "pt":
        raise ValueError(
            f"return_tensors={return_tensors!r} is not supported; this collator builds torch "
            "tensors only (return_tensors='pt')."
        )
    if not features:
        raise ValueError("Cannot collate an empty list of features.")
    rows = _as_mappings(features)
    first = rows[0]
    batch: dict[str, torch.Tensor] = {}
    label_key = next((key for key in _LABEL_KEYS if first.get(key) is not None), None)
    if label_key is not None:  # "label" wins over "label_ids", as in the reference
        values = [row[label_key] for row in rows]
        batch["labels"] = _guarded(label_key, values, partial(_label_tensor, label_key))
    for key, value in first.items():
        if key in _LABEL_KEYS or value is None or _is_text(value):
            continue
        batch[key] = _guarded(key, [row[key] for row in rows], _value_tensor)
    if not batch and first:
        raise ValueError(
            f"Cannot collate examples whose values are all text or None (keys: "
            f"{', '.join(map(str, first))}): a model takes tensors. Tokenize the text first "
            "(e.g. dataset.map(tokenizer)), or pass a data_collator that does."
        )
    return batch


def _as_mappings(features: Sequence[Any]) -> Sequence[Mapping[str, Any]]:
    first = features[0]
    if isinstance(first, Mapping):
        return features
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        names = [field.name for field in dataclasses.fields(first)]
        return [{name: getattr(item, name) for name in names} for item in features]
    if hasattr(first, "_asdict"):
        return [item._asdict() for item in features]
    # A tensor or an array has a __dict__ too, but no named fields to batch.
    if hasattr(first, "__dict__") and not isinstance(first, (torch.Tensor, np.ndarray)):
        return [vars(item) for item in features]
    raise TypeError(
        f"Cannot collate examples of type {type(first).__name__}: the default collator "
        "needs each example as a dict (or dataclass, named tuple) keyed by the model's "
        "input names, e.g. {'input_ids': [...], 'labels': 0}, because the Trainer calls "
        "model(**batch). Make the dataset return such dicts, or pass a data_collator that "
        "builds the batch dict from these examples."
    )


def _is_text(value: Any) -> bool:
    if isinstance(value, _TEXT_TYPES):
        return True
    return isinstance(value, (list, tuple)) and len(value) > 0 and isinstance(value[0], _TEXT_TYPES)


def _guarded(
    key: str, values: list[Any], convert: Callable[[list[Any]], torch.Tensor]
) -> torch.Tensor:
    try:
        return convert(values)
    except (RuntimeError, ValueError, TypeError) as error:
        raise ValueError(
            f"Cannot batch the values of '{key}' ({type(values[0]).__name__}): {error}. "
            "Every example needs the same shape for a key; pad variable-length inputs "
            "with DataCollatorWithPadding or a custom data_collator."
        ) from error


def _value_tensor(values: list[Any]) -> torch.Tensor:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, (np.ndarray, np.generic)):
        return torch.from_numpy(np.stack(values))
    return _python_tensor(values)


def _python_tensor(values: list[Any]) -> torch.Tensor:
    """``torch.tensor(values)``'s result, built through NumPy (several times faster)."""
    array = np.asarray(values)
    kind = array.dtype.kind
    if kind == "f":
        return torch.from_numpy(array).to(torch.get_default_dtype())
    if kind in "iub":
        return torch.from_numpy(array.astype(np.int64, copy=False) if kind != "b" else array)
    return torch.tensor(values)  # anything else: let torch decide or explain the failure


def _label_tensor(key: str, values: list[Any]) -> torch.Tensor:
    """Labels' dtype follows the first example's value, as in the reference: an integer
    class id (``label``: 3, or ``label_ids``: [3, 0, 1]) makes int64 labels; anything else
    (a float score, or a multi-hot list ``label``: [1, 0, 1] for multi-label
    classification, whose loss takes floats) makes float32 labels, and so do integer
    ids mixed with fractions, which int64 would truncate."""
    first = values[0]
    if isinstance(first, torch.Tensor):
        stacked = torch.stack(values)
        return stacked if stacked.is_floating_point() else stacked.long()
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"labels must be numbers, got dtype {array.dtype}")
    probe = first
    if key == "label_ids" and isinstance(first, (list, tuple, np.ndarray)) and len(first):
        probe = first[0]
    # Class ids only when every value is one: the reference would truncate [1, 2.5] to
    # [1, 2] because the first example holds an int.
    integral = isinstance(probe, (int, np.integer)) and array.dtype.kind in "biu"
    return torch.from_numpy(array.astype(np.int64 if integral else np.float32, copy=False))


def _rename_labels(batch: Any) -> Any:
    for key in _LABEL_KEYS:
        if key in batch:
            batch["labels"] = batch[key]
            del batch[key]
    return batch


_PADDING_PROCESSORS = frozenset({"PreTrainedTokenizerBase", "SequenceFeatureExtractor"})


def pads_sequences(processing_class: Any) -> bool:
    """Whether the default collator pads batches with ``processing_class``.

    transformers' tokenizers and sequence feature extractors (audio) pad; its image and
    video processors and multi-modal processors have a ``pad`` too, but examples for them
    arrive at one size, so the reference collates them plainly, and so does this. Any
    other object pads when it has a ``pad`` method.
    """
    if processing_class is None or not callable(getattr(processing_class, "pad", None)):
        return False
    classes = type(processing_class).__mro__
    if any(cls.__name__ in _PADDING_PROCESSORS for cls in classes):
        return True
    return not any(cls.__module__.startswith("transformers.") for cls in classes)


@dataclasses.dataclass
class DataCollatorWithPadding:
    """Pad variable-length tokenized examples to a common length with a tokenizer.

    Padding goes through ``tokenizer.pad`` so the tokenizer's pad token, padding side and
    attention mask rules apply. ``label`` / ``label_ids`` are renamed to ``labels`` like
    :func:`default_data_collator` does.

    Args:
        tokenizer: A tokenizer with a ``pad(features, padding=..., max_length=...,
            pad_to_multiple_of=..., return_tensors=...)`` method (transformers'
            tokenizers have one).
        padding: ``True`` / ``"longest"`` pads to the longest example of the batch,
            ``"max_length"`` to ``max_length``, ``False`` does not pad.
        max_length: Target length for ``padding="max_length"``.
        pad_to_multiple_of: Round the padded length up to a multiple of this (tensor
            cores prefer multiples of 8).
        return_tensors: ``"pt"`` for torch tensors.
    """

    tokenizer: Any
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        if not callable(getattr(self.tokenizer, "pad", None)):
            raise TypeError(
                f"DataCollatorWithPadding needs a tokenizer with a pad() method, got "
                f"{type(self.tokenizer).__name__}. Pass a transformers tokenizer."
            )

    def __call__(self, features: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        """Pad ``features`` into one batch; returns what ``tokenizer.pad`` returns."""
        batch = self.tokenizer.pad(
            features,
            padding=self.padding,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors=self.return_tensors,
        )
        return _rename_labels(batch)
