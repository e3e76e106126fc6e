"""Plain-data views of TrainingArguments: dict, JSON, TensorBoard hparams, repr.

Every view goes through :meth:`SerializationMixin.to_dict`, which masks secrets: a field
whose name ends in ``_token`` and holds a value shows as ``"<FIELD_NAME_UPPER>"``. So no
token reaches a log, a saved ``training_args.json``, a tracker or a traceback's repr.
"""

from __future__ import annotations

import os
from dataclasses import fields
from enum import Enum
from typing import Any

_SANITIZED_TYPES = (bool, int, float, str)


def to_plain(value: Any) -> Any:
    """Convert a value to JSON-friendly data: enums to values, tuples to lists, paths to
    strings, objects with a ``to_dict()`` method (such as a GenerationConfig) to dicts."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_plain(to_dict())
    return value


def mask_secret(name: str, value: Any) -> Any:
    """``"<HUB_TOKEN>"`` for a set ``hub_token`` (any ``*_token`` field); else ``value``."""
    if name.endswith("_token") and value is not None:
        return f"<{name.upper()}>"
    return value


def is_masked_secret(name: str, value: Any) -> bool:
    """Whether ``value`` is the placeholder :func:`mask_secret` writes for ``name``.

    A dict from ``to_dict`` (ours, or transformers', which masks even unset tokens) fed
    back to the constructor carries ``"<HUB_TOKEN>"``; used as a token it would replace
    the user's login with a string the Hub refuses.
    """
    return name.endswith("_token") and value == f"<{name.upper()}>"


def _unshown_fields(args: Any) -> set[str]:
    """Fields declared ``repr=False`` (bookkeeping such as ``_resolved_spellings``): kept
    in ``to_dict`` so that a rebuild carries them, left out of ``repr`` and the hparams."""
    return {spec.name for spec in fields(args) if not spec.repr}


class SerializationMixin:
    """``to_dict``, ``to_json_string``, ``to_sanitized_dict`` and a token-free ``repr``."""

    train_batch_size: int
    eval_batch_size: int

    def to_dict(self) -> dict[str, Any]:
        """Every constructor field as plain data, with tokens masked.

        ``type(self)(**self.to_dict())`` builds an equal object when no token is set.
        """
        return {
            spec.name: mask_secret(spec.name, to_plain(getattr(self, spec.name)))
            for spec in fields(self)  # type: ignore[arg-type]  # mixed into a dataclass
            if spec.init
        }

    def to_json_string(self) -> str:
        """:meth:`to_dict` as indented JSON (what checkpoints store as training_args.json)."""
        import json

        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_sanitized_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` restricted to ``bool``/``int``/``float``/``str`` values, others
        converted with ``str()``, plus ``train_batch_size`` and ``eval_batch_size``: the
        form TensorBoard's hparams accept."""
        data = {
            **self.to_dict(),
            "train_batch_size": self.train_batch_size,
            "eval_batch_size": self.eval_batch_size,
        }
        hidden = _unshown_fields(self)
        return {
            key: value if isinstance(value, _SANITIZED_TYPES) else str(value)
            for key, value in data.items()
            if key not in hidden
        }

    def __repr__(self) -> str:
        hidden = _unshown_fields(self)
        body = ",\n".join(
            f"  {key}={value!r}" for key, value in self.to_dict().items() if key not in hidden
        )
        return f"{type(self).__name__}(\n{body},\n)"

    __str__ = __repr__
