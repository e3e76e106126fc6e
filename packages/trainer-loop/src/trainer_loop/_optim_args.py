"""``TrainingArguments.optim_args``: from ``"momentum=0.9,nesterov=no"`` to constructor kwargs.

Two steps. :func:`parse_optim_args` reads the text without knowing the optimizer: it
splits the entries and guesses each value's type (number, ``True``/``False``, tuple,
string). :func:`fit_to_signature` then checks the entries against the constructor of the
optimizer that was chosen, which is the only place that knows what a key means: a key
the constructor does not take is refused, a word such as ``no`` or ``on`` becomes a
``bool`` where the constructor's default is a ``bool``, and a value that cannot be what
the default is (``momentum=abc``) is refused naming the key, instead of failing later
inside torch with a ``TypeError``.

The truth words are the reference's (``strtobool``): ``y, yes, t, true, on, 1`` and
``n, no, f, false, off, 0``, in any case.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["fit_to_signature", "parse_optim_args", "to_bool"]

_TRUE_WORDS = frozenset({"y", "yes", "t", "true", "on", "1"})
_FALSE_WORDS = frozenset({"n", "no", "f", "false", "off", "0"})


def parse_optim_args(optim_args: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Parse ``optim_args`` (``"momentum=0.9,nesterov=True"``) into constructor kwargs.

    Values become ``bool`` (``true``/``false``, any case), ``None`` (``none``), ``int``,
    ``float`` or, failing those, ``str`` (surrounding quotes removed). A parenthesised or
    bracketed value becomes a tuple of converted items, so ``betas=(0.9,0.95)`` works;
    commas inside it do not split entries. A mapping is returned as a plain dict copy.
    Other truth words (``yes``, ``off``, ...) stay strings here: whether they mean a
    ``bool`` depends on the optimizer, see :func:`fit_to_signature`.

    Raises:
        ValueError: An entry is not ``key=value``, a key repeats or brackets do not match.
    """
    if optim_args is None:
        return {}
    if isinstance(optim_args, Mapping):
        return dict(optim_args)
    parsed: dict[str, Any] = {}
    for entry in _split_top_level(optim_args):
        if not entry.strip():
            continue
        key, separator, raw_value = entry.partition("=")
        key = key.strip()
        if not separator or not key.isidentifier():
            raise ValueError(
                f"optim_args entry {entry.strip()!r} in {optim_args!r} is not key=value. "
                "Write optim_args as comma-separated pairs, e.g. 'momentum=0.9,nesterov=True'."
            )
        if key in parsed:
            raise ValueError(f"optim_args sets {key!r} twice in {optim_args!r}; keep one.")
        parsed[key] = _convert_value(raw_value.strip())
    return parsed


def _split_top_level(text: str) -> list[str]:
    """Split ``text`` on the commas that are outside brackets and parentheses."""
    pieces, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(text[start:index])
            start = index + 1
        if depth < 0:
            break
    if depth != 0:
        raise ValueError(f"optim_args {text!r} has unbalanced brackets or parentheses.")
    pieces.append(text[start:])
    return pieces


def _convert_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if len(raw) >= 2 and raw[0] + raw[-1] in ("()", "[]"):
        items = _split_top_level(raw[1:-1])
        return tuple(_convert_value(item.strip()) for item in items if item.strip())
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    for number in (int, float):
        try:
            return number(raw)
        except ValueError:
            pass
    return raw


def to_bool(key: str, value: Any) -> bool:
    """``value`` as a ``bool``: a bool, 0 or 1, or a truth word such as ``no`` or ``on``.

    Raises:
        ValueError: Anything else, naming ``key`` and the accepted words.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ValueError(
        f"optim_args {key}={value!r} is not a truth value. Write {key}=true or {key}=false "
        "(also accepted: yes/no, y/n, t/f, on/off, 1/0)."
    )


def fit_to_signature(
    optimizer_cls: Any, kwargs: dict[str, Any], options: Mapping[str, Any], name: str
) -> dict[str, Any]:
    """``kwargs`` updated with ``options``, checked against ``optimizer_cls``'s constructor.

    Each option is converted to the kind of its parameter's default (or, for a ``None``
    default, of its annotation: ``foreach: bool | None``): a truth word to a ``bool``
    (see :func:`to_bool`), a numeric string (from a mapping ``optim_args``) to a number.
    The trainer's own ``kwargs`` are neither converted nor checked.

    Args:
        optimizer_cls: The optimizer class (or factory) the kwargs are for.
        kwargs: What the trainer passes for ``name`` (learning rate, betas, ...).
        options: The parsed ``optim_args`` left after the recipe took its own keys.
        name: The ``optim`` name, for error messages.

    Raises:
        ValueError: A key the constructor does not accept (its accepted keys are listed),
            or a value that cannot be of the kind its default is.
    """
    parameters = _parameters(optimizer_cls)
    fitted = dict(kwargs)
    for key, value in options.items():
        parameter = parameters.get(key) if parameters is not None else None
        default = _typical_value(parameter)
        fitted[key] = _fit_value(key, value, default, optimizer_cls, name)
    if parameters is not None and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    ):
        _refuse_unknown(optimizer_cls, set(options) - set(parameters), parameters, name)
    return fitted


def _parameters(optimizer_cls: Any) -> Mapping[str, inspect.Parameter] | None:
    try:
        return inspect.signature(optimizer_cls).parameters
    except (TypeError, ValueError):  # a C extension class without a signature
        return None


def _typical_value(parameter: inspect.Parameter | None) -> Any:
    """The parameter's default, or for a ``None`` default (``foreach: bool | None``) a
    stand-in of the one kind its annotation names besides None, if any."""
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    if parameter.default is not None:
        return parameter.default
    kinds = set(re.findall(r"\b(bool|int|float|str)\b", str(parameter.annotation)))
    if kinds == {"bool"}:
        return False
    if kinds and kinds <= {"int", "float"}:
        return 0.0
    return None


def _fit_value(key: str, value: Any, default: Any, optimizer_cls: Any, name: str) -> Any:
    if value is None:
        return value  # the constructor decides whether None is allowed
    if isinstance(default, bool):
        return to_bool(key, value)
    if isinstance(default, (int, float)):
        return _number(key, value, default, optimizer_cls, name)
    if isinstance(default, tuple) and not isinstance(value, (tuple, list)):
        raise ValueError(
            f"optim_args {key}={value!r} is not a tuple: {_owner(optimizer_cls, name)} "
            f"expects one for {key} (default {default!r}). Write it in parentheses, "
            f"e.g. {key}=({', '.join(map(str, default))})."
        )
    return value


def _number(key: str, value: Any, default: Any, optimizer_cls: Any, name: str) -> Any:
    if isinstance(value, str):
        for kind in (int, float) if isinstance(default, int) else (float,):
            try:
                return kind(value)
            except ValueError:
                pass
    elif not isinstance(value, bool):
        return value  # a number or a tensor: the constructor decides
    raise ValueError(
        f"optim_args {key}={value!r} is not a number: {_owner(optimizer_cls, name)} "
        f"expects one for {key}. Write a number, e.g. {key}={default!r}."
    )


def _refuse_unknown(
    optimizer_cls: Any, unknown: set[str], parameters: Mapping[str, Any], name: str
) -> None:
    if unknown:
        accepted = [key for key in parameters if key != "params"]
        raise ValueError(
            f"optim_args sets {', '.join(sorted(unknown))}, which "
            f"{_owner(optimizer_cls, name)} does not accept. It accepts: "
            f"{', '.join(accepted)}. Fix or remove those keys in optim_args."
        )


def _owner(optimizer_cls: Any, name: str) -> str:
    return f"{getattr(optimizer_cls, '__name__', repr(optimizer_cls))} (optim='{name}')"
