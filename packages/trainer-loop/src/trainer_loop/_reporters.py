"""Turn ``args.report_to`` into reporter callbacks, found through entry points.

The loop never imports a reporting package: names resolve through the
``trainer.report_to`` entry-point group (trainer-core's plugin loader), so installing
trainer-reporting, or any third-party package registering a name there, is all it takes.
"""

from __future__ import annotations

from typing import Any

from trainer_core import REPORT_TO_GROUP, UnknownPluginError, installed_plugins, load_plugin

# Names transformers' report_to knows whose reporters this trainer does not provide.
_REFERENCE_ONLY = frozenset(
    {
        "azure_ml",
        "clearml",
        "codecarbon",
        "comet_ml",
        "dagshub",
        "dvclive",
        "flyte",
        "neptune",
        "swanlab",
        "trackio",
    }
)


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
    return [_load(name) for name in names]


def _load(name: str) -> Any:
    try:
        return load_plugin(REPORT_TO_GROUP, name)
    except UnknownPluginError as error:
        if name in _REFERENCE_ONLY:  # not a typo: say so, beside the installed names
            error.args = (
                f"{error} '{name}' is a reporter of transformers' Trainer that this trainer "
                "does not provide: remove it from report_to, or pass that library's "
                "TrainerCallback in callbacks=.",
            )
        raise
