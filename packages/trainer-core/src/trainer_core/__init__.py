"""The torch-free contracts every trainer package shares.

Callbacks, trainer state and control, the ports (Protocols) that layers implement, the
output tuples, the plugin loader and the error types. Importing this package never
imports torch, so configuration, reporting and search code can depend on it cheaply.
"""

from __future__ import annotations

from trainer_core._errors import MissingExtraError, UnknownPluginError, import_optional
from trainer_core._plugins import (
    HP_SEARCH_BACKENDS_GROUP,
    KNOWN_PROVIDERS,
    REPORT_TO_GROUP,
    available_plugins,
    load_plugin,
)
from trainer_core._runtime_port import ReduceOp, Runtime

__all__ = [
    "HP_SEARCH_BACKENDS_GROUP",
    "KNOWN_PROVIDERS",
    "REPORT_TO_GROUP",
    "MissingExtraError",
    "ReduceOp",
    "Runtime",
    "UnknownPluginError",
    "available_plugins",
    "import_optional",
    "load_plugin",
]
