"""The error types every trainer package raises for configuration it cannot serve.

They live here, in the torch-free contracts package, so that a caller can catch one
type whichever layer raised it: "an optional dependency is missing" and "no plugin has
that name" mean the same thing in reporting, search and the runtime.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says which extra brings it.

    It subclasses ``ImportError`` so that code written against the reference API, which
    catches ``ImportError`` around optional integrations, keeps working.
    """

    def __init__(self, *, module: str, package: str, extra: str | None, feature: str) -> None:
        self.module = module
        self.package = package
        self.extra = extra
        self.feature = feature
        if extra is None:  # a third-party package that no extra of ours brings
            how = f"pip install '{package}'"
        else:
            how = f"pip install '{package}[{extra}]' (or pip install 'trainer[{extra}]')"
        super().__init__(
            f"{feature} needs the Python package '{module}', which is not installed. "
            f"Install it with: {how}",
            name=module,
        )


def import_optional(module: str, *, package: str, extra: str | None, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming what to install.

    ``extra=None`` means no extra of ours brings the module: ``package`` is then the
    distribution to install directly.

    Heavy integrations call this inside the code path that needs them, never at module
    level, so importing a package costs nothing for users who do not use the feature.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is not None and module.split(".", maxsplit=1)[0] != error.name.split(".")[0]:
            raise  # the optional module is there but one of *its* dependencies is broken
        raise MissingExtraError(
            module=module, package=package, extra=extra, feature=feature
        ) from error


class PluginLoadError(ImportError):
    """An installed plugin answers to the requested name but cannot be used.

    Its module fails to import, the object its entry point names does not exist or is
    not what the group expects (a reporter class, a search-backend class), or several
    distributions register the same name. The message names the group, the name, the
    distribution(s) and what to do; the original exception, if any, is the ``__cause__``.
    An ``ImportError``, because loading a plugin is importing it.
    """

    def __init__(self, message: str, *, group: str, name: str, providers: list[str]) -> None:
        self.group = group
        self.plugin_name = name
        self.providers = list(providers)
        super().__init__(message)


class UnknownPluginError(ValueError):
    """No installed plugin answers to the requested name.

    A ``ValueError`` because the name usually comes from a user's argument
    (``report_to="tensorbord"``); the message lists what is available and, for names that
    are known but not installed, the package that provides them.
    """

    def __init__(
        self,
        *,
        group: str,
        name: str,
        available: dict[str, str],
        installable: dict[str, str],
    ) -> None:
        self.group = group
        self.name = name
        self.available = dict(available)
        self.installable = dict(installable)
        super().__init__(self._message())

    def _message(self) -> str:
        if self.name in self.installable:
            return (
                f"'{self.name}' for {self.group} is provided by a package that is not "
                f"installed. Install it with: pip install '{self.installable[self.name]}'"
            )
        listed = ", ".join(
            f"'{name}' (from {dist})" for name, dist in sorted(self.available.items())
        )
        not_installed = ", ".join(
            f"'{name}' (pip install '{spec}')" for name, spec in sorted(self.installable.items())
        )
        lines = [f"Unknown name '{self.name}' for {self.group}."]
        lines.append(f"Installed: {listed}." if listed else "No plugin is installed.")
        if not_installed:
            lines.append(f"Known but not installed: {not_installed}.")
        return " ".join(lines)
