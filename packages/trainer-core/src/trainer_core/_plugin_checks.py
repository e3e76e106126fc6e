"""What the loop expects of the object a plugin group's entry point names.

The loader checks it right after importing the object, so that a plugin registered
with the wrong target (a function, an instance, a class missing a method) fails when
the trainer is built, with a message naming the plugin and its package, rather than
at the first log or trial with an ``AttributeError`` deep inside the loop, or never
(a callback list ignores objects without event methods).
"""

from __future__ import annotations

from typing import Any, NamedTuple

REPORTER_MEMBERS = ("on_train_begin", "on_log", "on_train_end")
"""The :class:`~trainer_core.Reporter` methods a registered reporter class must have."""

SEARCH_BACKEND_MEMBERS = (
    "is_available",
    "ensure_available",
    "default_hp_space",
    "run",
    "hyperparameters",
    "trial_params",
    "trial_id",
    "report",
)
"""The :class:`~trainer_core.SearchBackend` methods a registered backend class must have."""


class PluginExpectation(NamedTuple):
    """What one plugin group's entry points must name.

    Attributes:
        kind: How a message names what is expected ("a SearchBackend class").
        members: Methods the class must have.
        named: Whether the class carries its entry-point name as a ``name`` attribute.
    """

    kind: str
    members: tuple[str, ...] = ()
    named: bool = False


REPORTER = PluginExpectation(
    "a Reporter class (a TrainerCallback with a `name`)", REPORTER_MEMBERS, named=True
)
SEARCH_BACKEND = PluginExpectation("a SearchBackend class", SEARCH_BACKEND_MEMBERS, named=True)
CALLBACK_CLASS = PluginExpectation("a TrainerCallback class")


def plugin_problem(expected: PluginExpectation, name: str, loaded: Any) -> str | None:
    """What is wrong with ``loaded`` as the plugin registered as ``name``, or None.

    The loop instantiates the registered object with no arguments (one instance per
    trainer), so it must be a class; reporters and search backends carry their
    entry-point name as a class attribute ``name`` (readable before construction) and
    have their port's methods.
    """
    if not isinstance(loaded, type):
        return (
            f"it is {_describe(loaded)}, not {expected.kind} (the loop instantiates it "
            "with no arguments)"
        )
    missing = [member for member in expected.members if not callable(getattr(loaded, member, None))]
    if missing:
        return f"{loaded.__name__} is not {expected.kind}: it has no {', '.join(missing)}"
    declared = getattr(loaded, "name", None)
    if expected.named and declared != name:
        return (
            f"{loaded.__name__}.name is {declared!r}, but it is registered as {name!r} "
            "(the class attribute `name` must be the entry-point name)"
        )
    return None


def _describe(loaded: Any) -> str:
    if callable(loaded) and hasattr(loaded, "__name__"):
        return f"the {type(loaded).__name__} {loaded.__name__!r}"
    return f"an instance of {type(loaded).__name__}"
