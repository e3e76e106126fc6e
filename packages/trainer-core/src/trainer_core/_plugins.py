"""Find and load plugins registered through entry points.

Reporters and search backends are chosen by strings users already write
(``report_to="tensorboard"``, ``backend="optuna"``). Each provider registers its names in
its own pyproject.toml under one of the groups below; the loader imports only the one
that is asked for, so a broken or slow plugin never affects users of another.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from trainer_core._errors import UnknownPluginError

REPORT_TO_GROUP = "trainer.report_to"
"""Entry-point group of reporters: ``name = "package.module:ReporterCallback"``."""

HP_SEARCH_BACKENDS_GROUP = "trainer.hp_search_backends"
"""Entry-point group of hyperparameter-search backends."""

KNOWN_PROVIDERS: dict[str, dict[str, str]] = {
    REPORT_TO_GROUP: {
        "tensorboard": "trainer-reporting[tensorboard]",
        "wandb": "trainer-reporting[wandb]",
        "mlflow": "trainer-reporting[mlflow]",
        "hub": "trainer-reporting[hub]",
    },
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


def load_plugin(group: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``group``.

    Only that entry point is loaded. An unknown name raises
    :class:`~trainer_core.UnknownPluginError` listing the installed names with their
    packages and, for known names whose package is missing, the install command.
    """
    installed = _entry_points(group)
    if name in installed:
        return installed[name].load()
    available = {plugin: _provider(ep) for plugin, ep in installed.items()}
    installable = {
        plugin: spec
        for plugin, spec in KNOWN_PROVIDERS.get(group, {}).items()
        if plugin not in installed
    }
    raise UnknownPluginError(group=group, name=name, available=available, installable=installable)
