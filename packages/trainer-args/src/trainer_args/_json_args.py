"""Arguments that hold a mapping, given as a dict, as JSON text, or as a JSON file path.

On the command line a mapping arrives as a string; in Python it is usually a dict. These
helpers accept both and always hand back a fresh dict, so normalising it never changes
the caller's object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from trainer_args._messages import invalid, wrong_type


def _parse_json_text(name: str, text: str) -> dict[str, Any]:
    import json

    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise invalid(name, text, "valid JSON", f"Fix the JSON: {error}.") from None
    if not isinstance(loaded, dict):
        raise invalid(name, text, "a JSON object ({...})")
    return loaded


def _load_json_file(name: str, path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return _parse_json_text(name, text)
    except ValueError as error:
        raise ValueError(
            f"{name}: the file {path!r} does not hold a JSON object. {error}"
        ) from None


def load_mapping(name: str, value: Any, *, allow_path: bool) -> dict[str, Any] | None:
    """Return ``value`` as a new dict, or ``None`` when it is ``None``.

    Args:
        name: the argument's name, for error messages.
        value: ``None``, a mapping, JSON object text (``'{"a": 1}'``; an empty string
            is an empty mapping) or, when ``allow_path``, the path of a JSON file.
        allow_path: whether a string that is not JSON text may name a file.

    Raises:
        TypeError: ``value`` is neither a mapping nor a string.
        ValueError: the text is not a JSON object, or the file does not exist.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, (str, os.PathLike)):
        expected = "a dict, JSON text or a JSON file path" if allow_path else "a dict or JSON text"
        raise wrong_type(name, value, expected)
    text = os.fspath(value).strip()
    if not text:
        return {}
    if text.startswith("{"):
        return _parse_json_text(name, text)
    if not allow_path:
        raise invalid(name, value, "a dict or JSON object text such as '{\"key\": 1}'")
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        raise invalid(
            name,
            value,
            "a dict, JSON object text, or the path of an existing JSON file",
            "Check the path.",
        )
    return _load_json_file(name, path)


def options_of(value: Any) -> dict[str, Any] | None:
    """A mapping, or a config object with ``to_dict()`` (an ``AcceleratorConfig``, ours
    or transformers'), as a new dict; None for anything else (text, paths, classes)."""
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if isinstance(value, type) or not callable(to_dict):
        return None
    return dict(to_dict())
