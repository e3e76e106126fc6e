"""Settings that have two spellings, both part of the accepted API.

``evaluation_strategy`` (v4.34) and ``eval_strategy`` (later releases) are one setting;
so are ``include_inputs_for_metrics=True`` and ``"inputs" in include_for_metrics``, and
``gradient_checkpointing[_kwargs]`` (v4.34) and transformers 5's
``activation_checkpointing[_kwargs]``. Both
spellings exist as fields and always hold the same value: at construction the one the
user gave wins (giving both with different values is an error), and afterwards assigning
either one updates the other.

Copies. ``dataclasses.replace(args, eval_strategy="no")`` and a rebuild from an edited
``args.to_dict()`` hand the constructor both spellings, one edited and one still holding
the old value: from the values alone that is exactly a user giving two contradicting
spellings. So a finished object records what each spelling held in the private field
``_resolved_spellings`` (kept up to date on assignment); replace() and to_dict() pass it
on, and the copy's construction applies an edit to one spelling as an assignment after
construction would (:func:`apply_spelling_edits`). Arguments built without that record
(user code, transformers' ``to_dict()``) follow the rules below unchanged.
"""

from __future__ import annotations

from typing import Any

from trainer_args._enums import IntervalStrategy
from trainer_args._messages import coerce_enum, conflict, invalid, wrong_type
from trainer_args._serialization import to_plain
from trainer_args._transformers5 import mirror_sampling_strategy

METRIC_INCLUDES: tuple[str, ...] = ("inputs", "loss")
"""What ``include_for_metrics`` may list."""


def resolve_eval_strategy(args: Any) -> None:
    """Make ``eval_strategy`` and ``evaluation_strategy`` hold the same enum member.

    ``eval_strategy=None`` means "take evaluation_strategy"; ``evaluation_strategy="no"``
    (its default) yields to any ``eval_strategy``. Two different explicit values raise.
    """
    old = coerce_enum("evaluation_strategy", args.evaluation_strategy, IntervalStrategy)
    if args.eval_strategy is None:
        chosen = old
    else:
        new = coerce_enum("eval_strategy", args.eval_strategy, IntervalStrategy)
        if old not in (IntervalStrategy.NO, new):
            raise conflict(
                "eval_strategy",
                new.value,
                "evaluation_strategy",
                old.value,
                "They are two spellings of one setting: give only one of them "
                "(eval_strategy is the newer name).",
            )
        chosen = new
    args.evaluation_strategy = chosen
    args.eval_strategy = chosen


def normalize_metric_includes(value: Any) -> list[str]:
    """Validate ``include_for_metrics`` and return it as a list without duplicates."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise wrong_type("include_for_metrics", value, "a list of 'inputs' and/or 'loss'")
    unknown = [item for item in items if item not in METRIC_INCLUDES]
    if unknown:
        raise invalid(
            "include_for_metrics",
            value,
            "a list of 'inputs' and/or 'loss'",
            f"Remove {unknown!r}.",
        )
    return list(dict.fromkeys(items))


def resolve_metric_includes(args: Any) -> None:
    """Make ``include_inputs_for_metrics`` agree with ``"inputs" in include_for_metrics``.

    ``include_inputs_for_metrics=False`` is its default and cannot be told apart from
    "not given", so the two spellings can only add ``"inputs"``, never contradict.
    """
    items = normalize_metric_includes(args.include_for_metrics)
    if args.include_inputs_for_metrics and "inputs" not in items:
        items.append("inputs")
    args.include_for_metrics = items
    args.include_inputs_for_metrics = "inputs" in items


CHECKPOINTING_TWINS: dict[str, str] = {
    "activation_checkpointing": "gradient_checkpointing",
    "gradient_checkpointing": "activation_checkpointing",
    "activation_checkpointing_kwargs": "gradient_checkpointing_kwargs",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}
"""Each activation-checkpointing spelling and the field that must hold the same value."""


def resolve_activation_checkpointing(args: Any) -> None:
    """Make the ``activation_checkpointing*`` and ``gradient_checkpointing*`` pairs agree.

    The transformers 5 names default to ``None`` ("not given") and then take the v4.34
    value. ``gradient_checkpointing=False`` is its default and cannot be told apart from
    "not given", so only ``gradient_checkpointing=True`` can contradict the new name;
    two different kwargs mappings always do.
    """
    new = args.activation_checkpointing
    if new is not None and not isinstance(new, bool):
        raise wrong_type("activation_checkpointing", new, "True or False")
    if new is None:
        new = bool(args.gradient_checkpointing)
    elif args.gradient_checkpointing and not new:
        raise conflict(
            "activation_checkpointing",
            new,
            "gradient_checkpointing",
            True,
            "They are two spellings of one setting: give only one of them "
            "(activation_checkpointing is the newer name).",
        )
    args.activation_checkpointing = args.gradient_checkpointing = new

    old_kwargs = args.gradient_checkpointing_kwargs
    new_kwargs = args.activation_checkpointing_kwargs
    if new_kwargs is None:
        new_kwargs = old_kwargs
    elif old_kwargs is not None and old_kwargs != new_kwargs:
        raise conflict(
            "activation_checkpointing_kwargs",
            new_kwargs,
            "gradient_checkpointing_kwargs",
            old_kwargs,
            "They are two spellings of one setting: give only one of them "
            "(activation_checkpointing_kwargs is the newer name).",
        )
    args.activation_checkpointing_kwargs = args.gradient_checkpointing_kwargs = new_kwargs


def mirror_alias(args: Any, name: str, value: Any) -> None:
    """Assign ``name`` on a finished TrainingArguments, keeping its twin in step.

    Fields without a twin are assigned unchanged (and unchecked, as in the reference).
    """
    if name in ("eval_strategy", "evaluation_strategy"):
        strategy = coerce_enum(name, value, IntervalStrategy)
        object.__setattr__(args, "eval_strategy", strategy)
        object.__setattr__(args, "evaluation_strategy", strategy)
    elif name == "include_for_metrics":
        items = normalize_metric_includes(value)
        object.__setattr__(args, "include_for_metrics", items)
        object.__setattr__(args, "include_inputs_for_metrics", "inputs" in items)
    elif name == "include_inputs_for_metrics":
        items = [item for item in args.include_for_metrics if item != "inputs"]
        if value:
            items.append("inputs")
        object.__setattr__(args, "include_for_metrics", items)
        object.__setattr__(args, "include_inputs_for_metrics", bool(value))
    elif name in ("group_by_length", "train_sampling_strategy"):
        mirror_sampling_strategy(args, name, value)
    elif name in CHECKPOINTING_TWINS:
        object.__setattr__(args, name, value)
        object.__setattr__(args, CHECKPOINTING_TWINS[name], value)
    else:
        object.__setattr__(args, name, value)


TWIN_SPELLINGS: tuple[tuple[str, str], ...] = (
    ("evaluation_strategy", "eval_strategy"),
    ("include_inputs_for_metrics", "include_for_metrics"),
    ("group_by_length", "train_sampling_strategy"),
    ("gradient_checkpointing", "activation_checkpointing"),
    ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
)
"""Each setting stored under two names: (older spelling, newer spelling)."""

TWIN_NAMES: frozenset[str] = frozenset(name for pair in TWIN_SPELLINGS for name in pair)

SPELLINGS_RECORD = "_resolved_spellings"
"""The private field where finished arguments record every twin's value (module doc)."""


def remember_spellings(args: Any) -> None:
    """Record the current value of every spelling, as plain data, in ``_resolved_spellings``."""
    record = {name: to_plain(getattr(args, name)) for name in sorted(TWIN_NAMES)}
    object.__setattr__(args, SPELLINGS_RECORD, record)


def apply_spelling_edits(args: Any) -> None:
    """In a copy of finished arguments, let the spelling that was edited win.

    A pair where exactly one spelling differs from the record gets that value on both,
    as assigning it after construction would; a pair where both differ is left for the
    usual rules (an error when they contradict). Without a record, nothing happens.
    """
    record = getattr(args, SPELLINGS_RECORD, None)
    if not isinstance(record, dict):
        return
    for pair in TWIN_SPELLINGS:
        edited = [name for name in pair if _differs(args, name, record)]
        if len(edited) == 1:
            mirror_alias(args, edited[0], getattr(args, edited[0]))


def _differs(args: Any, name: str, record: dict[str, Any]) -> bool:
    """Whether ``name`` holds another value than the record (compared as plain data, so
    that ``"epoch"`` from a JSON file equals ``IntervalStrategy.EPOCH``)."""
    return name in record and to_plain(getattr(args, name)) != record[name]


def assign_setting(args: Any, name: str, value: Any) -> None:
    """Assign ``name`` on finished arguments: twins stay in step, and the record follows."""
    mirror_alias(args, name, value)
    if name in TWIN_NAMES:
        remember_spellings(args)
