"""Turn ``args.report_to`` into reporter callbacks, found through entry points.

The loop never imports a reporting package: names resolve through the
``trainer.report_to`` entry-point group (trainer-core's plugin loader), so installing
trainer-reporting, or any third-party package registering a name there, is all it takes.
"""

from __future__ import annotations

from typing import Any

from trainer_core import REPORT_TO_GROUP, installed_plugins, load_plugin


def resolve_reporters(report_to: list[str] | str | None) -> list[Any]:
    """The callback classes for ``report_to``; "all" means every reporter whose library
    is installed (a named reporter whose library is missing raises its install hint)."""
    if report_to is None:
        return []
    names = [report_to] if isinstance(report_to, str) else list(report_to)
    if "none" in names:
        return []
    if "all" in names:
        names = sorted(installed_plugins(REPORT_TO_GROUP))
    return [load_plugin(REPORT_TO_GROUP, name) for name in names]
