"""Find and load plugins registered through entry points.

Reporters and search backends are chosen by strings users already write
(``report_to="tensorboard"``, ``backend="optuna"``). Each provider registers its names in
its own pyproject.toml under one of the groups below; the loader imports only the one
that is asked for, so a broken or slow plugin never affects users of another.

Hooks are the other kind of plugin: every entry point of a hook group is called
(:func:`run_hooks`), e.g. with finished ``TrainingArguments`` for a DeepSpeed run.
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import (
    Distribution,
    EntryPoint,
    PackageNotFoundError,
    distribution,
    entry_points,
)
from typing import Any

from trainer_core._errors import MissingExtraError, PluginLoadError, UnknownPluginError
from trainer_core._plugin_checks import (
    CALLBACK_CLASS,
    REPORTER,
    SEARCH_BACKEND,
    PluginExpectation,
    plugin_problem,
)

REPORT_TO_GROUP = "trainer.report_to"
"""Entry-point group of reporters: ``name = "package.module:ReporterCallback"``."""

HP_SEARCH_BACKENDS_GROUP = "trainer.hp_search_backends"
"""Entry-point group of hyperparameter-search backends."""

HUB_GROUP = "trainer.hub"
"""Entry-point group of the Hub integration (``push_to_hub``): one name, ``hub``.

Not a ``report_to`` name, so that ``report_to="all"`` never pushes anywhere; the loop
loads it only when ``push_to_hub`` is set.
"""

ARGUMENTS_HOOKS_GROUP = "trainer.arguments_hooks"
"""Entry-point group of functions called with a finished ``TrainingArguments``.

trainer-args calls them (through :func:`run_hooks`) only when DeepSpeed is asked for, so
that a package which needs torch can act on the arguments (register a ZeRO-3 config with
transformers) without trainer-args importing it: ``name = "package.module:function"``.
"""

PROCESS_GROUP_HOOKS_GROUP = "trainer.process_group_hooks"
"""Entry-point group of functions that join a launcher's processes into one group, called
with the ``TrainingArguments`` when a script needs the group before any ``Trainer``
exists (``args.main_process_first()``, ``args.device``), as the reference's arguments
form it. trainer-args calls them only in a launched process of several whose group has
not started; the runtime package provides one.
"""

logger = logging.getLogger(__name__)

_EXPECTED: dict[str, PluginExpectation] = {
    REPORT_TO_GROUP: REPORTER,
    HP_SEARCH_BACKENDS_GROUP: SEARCH_BACKEND,
    HUB_GROUP: CALLBACK_CLASS,
}
"""What the loop does with each group's plugins, checked when one is loaded."""

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    REPORT_TO_GROUP: {
        "tensorboard": "trainer-reporting[tensorboard]",
        "wandb": "trainer-reporting[wandb]",
        "mlflow": "trainer-reporting[mlflow]",
    },
    HUB_GROUP: {"hub": "trainer-reporting[hub]"},
    HP_SEARCH_BACKENDS_GROUP: {
        "optuna": "trainer-hpsearch[optuna]",
        "ray": "trainer-hpsearch[ray]",
        "sigopt": "trainer-hpsearch[sigopt]",
    },
}
"""Names the project's own packages provide, so that an error can say what to install
when the providing package is absent."""


def _entry_points(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=group):
        found.setdefault(entry_point.name, entry_point)
    return found


def _provider(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    return dist.metadata["Name"] if dist is not None else entry_point.value


def available_plugins(group: str) -> dict[str, str]:
    """Map every installed plugin name in ``group`` to the distribution that provides it.

    Reads only package metadata: nothing is imported.
    """
    return {name: _provider(ep) for name, ep in _entry_points(group).items()}


def installed_plugins(group: str) -> dict[str, str]:
    """Like :func:`available_plugins`, less the plugins whose declared extras are missing.

    A plugin registered with extras (``wandb = "trainer_reporting:WandbCallback [wandb]"``)
    can only start when its package's requirements for those extras are installed; a
    choice of "every installed reporter" (``report_to="all"``) must skip the others, as the
    reference's "all" picks only integrations whose library is installed. A plugin without
    extras counts as installed. Reads only package metadata: nothing is imported.
    """
    return {
        name: _provider(ep) for name, ep in _entry_points(group).items() if _extras_installed(ep)
    }


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _extras_installed(entry_point: EntryPoint) -> bool:
    dist = entry_point.dist
    if not entry_point.extras or dist is None:
        return True
    wanted = {_normalise(extra) for extra in entry_point.extras}
    return all(_is_installed(name) for name in _extra_requirements(dist, wanted))


def _extra_requirements(dist: Distribution, extras: set[str]) -> list[str]:
    """The distribution names ``dist`` requires for any of ``extras``."""
    names = []
    for requirement in dist.requires or ():
        marker = _EXTRA_MARKER.search(requirement)
        name = _REQUIREMENT_NAME.match(requirement)
        if marker and name and _normalise(marker.group(1)) in extras:
            names.append(name.group(1))
    return names


def _is_installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_plugin(group: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``group``.

    Only that entry point is loaded. An unknown name raises
    :class:`~trainer_core.UnknownPluginError` listing the installed names with their
    packages and, for known names whose package is missing, the install command.

    A plugin that cannot be used raises :class:`~trainer_core.PluginLoadError` naming it
    and its package: its module fails to import (the import's exception is the cause),
    the object it names is missing or is not what ``group`` expects (a class, with the
    port's methods and its entry-point name as ``name``, for reporters and search
    backends), or two distributions register ``name`` with different targets (which
    one wins would depend on the order of ``sys.path``). A
    :class:`~trainer_core.MissingExtraError` raised while importing passes unchanged.
    """
    candidates = _candidates(group, name)
    if not candidates:
        installed = _entry_points(group)
        available = {plugin: _provider(ep) for plugin, ep in installed.items()}
        installable = {
            plugin: spec
            for plugin, spec in KNOWN_PROVIDERS.get(group, {}).items()
            if plugin not in installed
        }
        raise UnknownPluginError(
            group=group, name=name, available=available, installable=installable
        )
    entry_point = _only_candidate(group, name, candidates)
    try:
        loaded = entry_point.load()
    except MissingExtraError:
        raise
    except Exception as error:
        raise _plugin_load_error(group, name, entry_point, error) from error
    expected = _EXPECTED.get(group)
    problem = None if expected is None else plugin_problem(expected, name, loaded)
    if problem is not None:
        raise PluginLoadError(
            f"The {group} plugin {name!r} ({entry_point.value}, from "
            f"{_provider(entry_point)}) cannot be used: {problem}. Fix the entry point in "
            "that package's metadata, or uninstall it.",
            group=group,
            name=name,
            providers=[_provider(entry_point)],
        )
    return loaded


def _candidates(group: str, name: str) -> list[EntryPoint]:
    """The entry points registering ``name`` in ``group``, one per distinct target."""
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=group, name=name):
        found.setdefault(entry_point.value, entry_point)
    return list(found.values())


def _only_candidate(group: str, name: str, candidates: list[EntryPoint]) -> EntryPoint:
    if len(candidates) == 1:
        return candidates[0]
    providers = [_provider(ep) for ep in candidates]
    listed = ", ".join(
        f"{provider} ({ep.value})" for provider, ep in zip(providers, candidates, strict=True)
    )
    raise PluginLoadError(
        f"Several installed packages register {name!r} in {group}: {listed}. Which one "
        "would load depends on the order of sys.path; uninstall all but one of them.",
        group=group,
        name=name,
        providers=providers,
    )


def _plugin_load_error(
    group: str, name: str, entry_point: EntryPoint, error: Exception
) -> PluginLoadError:
    provider = _provider(entry_point)
    hint = "Reinstall or fix that package, or uninstall it."
    if isinstance(error, ModuleNotFoundError) and _is_own_module(entry_point, error.name):
        hint = (
            f"Its module {entry_point.module!r} is not installed: {provider}'s metadata was "
            "left behind by a removed or broken install. Reinstall or uninstall it."
        )
    elif isinstance(error, ModuleNotFoundError) and entry_point.extras:
        extras = ",".join(entry_point.extras)
        hint = f"Install what it needs with: pip install '{provider}[{extras}]'."
    return PluginLoadError(
        f"The {group} plugin {name!r} ({entry_point.value}, from {provider}) could not be "
        f"loaded: {type(error).__name__}: {error}. {hint}",
        group=group,
        name=name,
        providers=[provider],
    )


class PluginHookError(RuntimeError):
    """An installed hook could not be loaded (its module fails to import, or the object
    it names does not exist); the message names the hook and its distribution."""


def run_hooks(group: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call every plugin registered in ``group`` with ``args`` / ``kwargs``, in name order.

    Returns each hook's result by name. A hook whose own module is no longer installed
    (metadata left behind by a removed package) is skipped with a log message. Any other
    failure to load raises :class:`PluginHookError`. An exception raised by a hook itself
    propagates unchanged (it is the hook's answer, e.g. a ``ValueError`` about the
    arguments), with a note naming the hook where Python supports notes.
    """
    results: dict[str, Any] = {}
    for name, entry_point in sorted(_entry_points(group).items()):
        hook = _load_hook(group, name, entry_point)
        if hook is None:
            continue
        try:
            results[name] = hook(*args, **kwargs)
        except Exception as error:
            if hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(f"(raised by the {group} hook {name!r} of {_provider(entry_point)})")
            raise
    return results


def _load_hook(group: str, name: str, entry_point: EntryPoint) -> Any:
    try:
        return entry_point.load()
    except ModuleNotFoundError as error:
        if _is_own_module(entry_point, error.name):
            logger.warning(
                "Skipping the %s hook %r: its module %r is not installed (%s).",
                group,
                name,
                entry_point.module,
                _provider(entry_point),
            )
            return None
        raise _load_error(group, name, entry_point, error) from error
    except Exception as error:
        raise _load_error(group, name, entry_point, error) from error


def _is_own_module(entry_point: EntryPoint, missing: str | None) -> bool:
    module = entry_point.module
    return missing is not None and (module == missing or module.startswith(f"{missing}."))


def _load_error(
    group: str, name: str, entry_point: EntryPoint, error: Exception
) -> PluginHookError:
    return PluginHookError(
        f"The {group} hook {name!r} ({entry_point.value}, from {_provider(entry_point)}) "
        f"could not be loaded: {type(error).__name__}: {error}. Reinstall or fix that "
        f"package, or uninstall it to run without the hook."
    )
